"""The VM's recipe and command lines, as data (no I/O).

The image is keyed by :func:`recipe_sha` over the package list, the suite, the mirror
and :data:`BUILD_VERSION` (bump it whenever ``image.py`` changes what it writes into
the image), so a cached image is re-used until the recipe changes.

Network plan: every VM gets a namespace of its own holding a bridge (the "internet"
segment, :data:`SEGMENT`); the VM's tap sits on it with :data:`VM_ADDRESS`, the bridge
itself holds :data:`GATEWAY`. Test namespaces (operator, devices) join the segment with
a veth whose far end is enslaved to the bridge. Nothing is routed from the root namespace.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

#: Bump when the build steps change what lands in the image (forces a rebuild).
BUILD_VERSION = 2
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"

#: A realistic small VPS: kernel with the wireguard module, systemd, sshd, and what the
#: hub provisioning installs, preinstalled so no test downloads inside a slow TCG guest.
PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "procps",
    "wireguard-tools",
    "nftables",
    "python3",
    "python3-venv",
    "sudo",
    "ca-certificates",
    "curl",
    "git",
    "postgresql",
    "caddy",
    "bubblewrap",
)

#: Services installed but left disabled, as on a VPS before provisioning (and a faster boot).
DISABLED_UNITS: tuple[str, ...] = ("postgresql.service", "caddy.service")

SEGMENT = ipaddress.ip_network("198.51.100.0/24")
GATEWAY = ipaddress.ip_interface("198.51.100.1/24")
VM_ADDRESS = ipaddress.ip_interface("198.51.100.2/24")
#: Hosts handed to test namespaces that join the segment (``Vm.attach``).
FIRST_GUEST_HOST = 10

IMAGE_SIZE = "4G"
IMAGE_FILES = (
    "vmlinuz", "initrd.img", "rootfs.raw", "id_ed25519", "id_ed25519.pub", "known_hosts", "recipe.json",
)
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,10}$")


@dataclass(frozen=True)
class Recipe:
    suite: str = SUITE
    mirror: str = MIRROR
    packages: tuple[str, ...] = PACKAGES
    disabled_units: tuple[str, ...] = DISABLED_UNITS
    size: str = IMAGE_SIZE
    build_version: int = BUILD_VERSION

    def to_json(self) -> dict[str, object]:
        return {
            "suite": self.suite,
            "mirror": self.mirror,
            "packages": sorted(self.packages),
            "disabled_units": sorted(self.disabled_units),
            "size": self.size,
            "build_version": self.build_version,
        }


def recipe_sha(recipe: Recipe) -> str:
    """The cache key: order of the package list does not matter, anything else does."""
    blob = json.dumps(recipe.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_name(name: str) -> str:
    """VM names end up in namespace and interface names (15 bytes max): short and plain."""
    if not _NAME.match(name):
        raise ValueError(f"VM name must match {_NAME.pattern} (it names a netns and interfaces): {name!r}")
    return name


@dataclass(frozen=True)
class NetPlan:
    """The names and addresses of one VM's network (pure; ``machine.py`` makes them)."""

    name: str

    @property
    def netns(self) -> str:
        return f"vm-{self.name}"

    @property
    def bridge(self) -> str:
        return "br0"

    @property
    def tap(self) -> str:
        return "tap0"

    @property
    def vm_ip(self) -> str:
        return str(VM_ADDRESS.ip)

    @property
    def gateway_ip(self) -> str:
        return str(GATEWAY.ip)

    def guest_address(self, index: int) -> ipaddress.IPv4Interface:
        """The ``index``-th address handed to a namespace joining the segment."""
        host = FIRST_GUEST_HOST + index
        if host >= SEGMENT.num_addresses - 1:
            raise ValueError(f"segment {SEGMENT} is full")
        return ipaddress.IPv4Interface(f"{SEGMENT.network_address + host}/{SEGMENT.prefixlen}")


def kernel_append(plan: NetPlan) -> str:
    """The guest kernel command line; ``meshagents.net=`` is read by the image's
    ``meshagents-vmnet.service`` (one image, any address)."""
    return (
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 quiet "
        f"meshagents.net={VM_ADDRESS.with_prefixlen},{GATEWAY.ip}"
    )


def mac_address(name: str) -> str:
    """A stable locally administered MAC per VM name (same address after a reboot)."""
    digest = hashlib.sha256(name.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def overlay_argv(base: Path, overlay: Path) -> list[str]:
    """A copy-on-write disk over the cached raw image (the image is never written)."""
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw", str(overlay)]


def qemu_argv(
    *, image_dir: Path, run_dir: Path, plan: NetPlan, mem_mb: int = 1024, smp: int = 2
) -> list[str]:
    """qemu under TCG (KVM guests hang on these machines, FIELD-NOTES "Virtual machines").

    No ``-no-reboot``: a guest ``reboot`` resets the machine in the same process, so the
    disk, tap and address stay. ``-daemonize`` detaches it once the devices are open;
    ``-runas nobody`` drops root right after.
    """
    return [
        "qemu-system-x86_64",
        "-accel", "tcg",
        "-name", f"meshagents-vm-{plan.name}",
        "-m", str(mem_mb),
        "-smp", str(smp),
        "-display", "none",
        "-vga", "none",
        "-kernel", str(image_dir / "vmlinuz"),
        "-initrd", str(image_dir / "initrd.img"),
        "-append", kernel_append(plan),
        "-drive", f"file={run_dir / 'disk.qcow2'},format=qcow2,if=virtio,cache=unsafe",
        "-netdev", f"tap,id=net0,ifname={plan.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={mac_address(plan.name)}",
        "-device", "virtio-rng-pci",
        "-serial", f"file:{run_dir / 'console.log'}",
        "-monitor", f"unix:{run_dir / 'monitor.sock'},server,nowait",
        "-pidfile", str(run_dir / "qemu.pid"),
        # root only to open the tap and files; the emulator itself runs as nobody
        "-runas", "nobody",
        "-daemonize",
    ]


def ssh_config_text(
    *, alias: str, host: str, port: int, key: Path, known_hosts: Path, control_path: Path
) -> str:
    """An ssh_config entry for the VM; ``HostKeyAlias`` pins the image's host key
    whatever address reaches it (loopback forward or the segment address)."""
    return (
        f"Host {alias}\n  HostName {host}\n  Port {port}\n  User root\n"
        f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
        f"  HostKeyAlias meshagents-vm\n  UserKnownHostsFile {known_hosts}\n"
        f"  StrictHostKeyChecking yes\n  ConnectTimeout 10\n"
        f"  ServerAliveInterval 15\n  ServerAliveCountMax 8\n"
        # one TCP+key exchange per VM boot, not per command: a handshake costs ~3 s of TCG CPU
        f"  ControlMaster auto\n  ControlPath {control_path}\n  ControlPersist 300\n"
    )
