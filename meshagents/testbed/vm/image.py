"""Build and cache the VM image (debootstrap, a chroot, ``mkfs.ext4 -d``), atomically.

    img = build()                  # <cache>/vm/<recipe-sha>/, built once per recipe
    img.rootfs, img.kernel, img.initrd, img.key, img.known_hosts

The build happens in ``<cache>/vm/.build-<sha>-<hex>/`` and is renamed to ``<sha>/`` as
its last step, so a killed build never leaves a half image that a later run re-uses
(left-over build directories are removed by the next build). The root SSH key is made
per image, kept beside it (0600) and nowhere else. Needs root, debootstrap and e2fsprogs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from meshagents.errors import FnError
from meshagents.state import cache_dir
from meshagents.testbed.vm.recipe import IMAGE_FILES, Recipe, recipe_sha

VMNET_SCRIPT = """#!/bin/sh
# The VM's address comes from the kernel command line (meshagents.net=ADDR/LEN,GATEWAY),
# so one cached image serves any VM; written by meshagents/testbed/vm/image.py.
set -e
v=
for w in $(cat /proc/cmdline); do
  case "$w" in meshagents.net=*) v="${w#meshagents.net=}";; esac
done
[ -n "$v" ] || exit 0
ip link set lo up
ip link set eth0 up
ip addr replace "${v%,*}" dev eth0
ip route replace default via "${v#*,}"
"""

VMNET_UNIT = """[Unit]
Description=meshagents test VM network (address from the kernel command line)
DefaultDependencies=no
BindsTo=sys-subsystem-net-devices-eth0.device
After=sys-subsystem-net-devices-eth0.device
Before=network.target network-online.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/meshagents-vmnet

[Install]
WantedBy=multi-user.target network-online.target
"""

SSHD_DROPIN = """# meshagents test VM: keys only
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

#: Timers a fresh VPS has that only cost time in a TCG guest.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
)

#: A small initrd (the guest's devices are known: virtio disk and NIC, ext4 root):
#: unpacking the default "most modules" one costs seconds of emulated CPU at every boot.
INITRAMFS_CONF = "MODULES=list\n"
INITRAMFS_MODULES = "virtio_pci\nvirtio_blk\nvirtio_net\next4\n"


@dataclass(frozen=True)
class Image:
    dir: Path
    sha: str

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs.raw"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def recipe(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.dir / "recipe.json").read_text())
        return data


def vm_cache_dir() -> Path:
    d = cache_dir() / "vm"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def cached(recipe: Recipe | None = None) -> Image | None:
    """The finished image for ``recipe``, or None (a directory missing a file is not one)."""
    recipe = recipe or Recipe()
    sha = recipe_sha(recipe)
    d = vm_cache_dir() / sha
    if all((d / f).is_file() for f in IMAGE_FILES):
        return Image(d, sha)
    return None


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise FnError("vm_build_failed", f"{' '.join(argv[:4])}... exited {proc.returncode}: {tail}")


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C.UTF-8",
        "HOME": "/root",
    }


@contextlib.contextmanager
def _chroot_mounts(root: Path) -> Iterator[None]:
    """proc, sys and private /dev/pts, /dev/shm for the chroot; never a bind of the host's
    /dev (a later ``rm -rf`` of the build directory must not reach the host's nodes)."""
    mounts = [
        (["-t", "proc", "proc"], root / "proc"),
        (["-t", "sysfs", "-o", "ro", "sysfs"], root / "sys"),
        (["-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts"], root / "dev/pts"),
        (["-t", "tmpfs", "tmpfs"], root / "dev/shm"),
    ]
    done: list[Path] = []
    try:
        for args, target in mounts:
            target.mkdir(parents=True, exist_ok=True)
            _run(["mount", *args, str(target)], timeout=30)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as fh:
        return [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]


def _remove_build_dir(path: Path) -> None:
    """Remove a (possibly killed) build directory; refuses while anything is mounted in it."""
    if not path.exists():
        return
    for m in sorted(_mounted_under(path), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)
    if _mounted_under(path):
        raise FnError("vm_build_failed", f"{path} still has mounts; not removing it")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure(root: Path, out: Path, recipe: Recipe) -> None:
    """Everything that makes the chroot a bootable, reachable VPS."""
    _write(root / "etc/hostname", "vps\n")
    _write(root / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 vps\n::1 localhost ip6-localhost\n")
    _write(root / "etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    _write(root / "etc/resolv.conf", "# no DNS on the test segment (meshagents test VM)\n")
    # empty: each VM's overlay gets its own machine id on first boot
    _write(root / "etc/machine-id", "")
    _write(root / "usr/local/sbin/meshagents-vmnet", VMNET_SCRIPT, 0o755)
    _write(root / "etc/systemd/system/meshagents-vmnet.service", VMNET_UNIT)
    for wanted in ("multi-user.target.wants", "network-online.target.wants"):
        link = root / "etc/systemd/system" / wanted / "meshagents-vmnet.service"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/etc/systemd/system/meshagents-vmnet.service")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.symlink_to("/dev/null")
    _write(root / "etc/ssh/sshd_config.d/meshagents.conf", SSHD_DROPIN)
    # root's key: made per image, beside it, never in the repository
    key = out / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "meshagents-vm", "-f", str(key)], timeout=30)
    (out / "id_ed25519").chmod(0o600)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    _write(ssh_dir / "authorized_keys", (out / "id_ed25519.pub").read_text(), 0o600)
    host_pub = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    _write(out / "known_hosts", f"meshagents-vm {host_pub[0]} {host_pub[1]}\n", 0o600)
    env = _chroot_env()
    for unit in recipe.disabled_units:
        _run(["chroot", str(root), "systemctl", "disable", unit], timeout=60, env=env)
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    _run(["chroot", str(root), "apt-get", "clean"], timeout=60, env=env)


def _kernel_out(root: Path, out: Path) -> None:
    boot = root / "boot"
    kernels = sorted(boot.glob("vmlinuz-*"))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise FnError("vm_build_failed", f"no kernel or initrd in {boot}")
    shutil.copy2(kernels[-1], out / "vmlinuz")
    shutil.copy2(initrds[-1], out / "initrd.img")


Step = tuple[str, Callable[[], None]]


def build(
    recipe: Recipe | None = None, *, force: bool = False, log: Callable[[str], None] | None = None
) -> Image:
    """The image for ``recipe``: the cached one, or a fresh build (``force`` rebuilds)."""
    recipe = recipe or Recipe()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if os.geteuid() != 0:
        raise FnError("needs_root", "building the VM image needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "mkfs.ext4", "ssh-keygen", "chroot"):
        if shutil.which(tool) is None:
            raise FnError("missing_tool", f"{tool} not found (apt-get install debootstrap e2fsprogs "
                          "openssh-client)")
    found = cached(recipe)
    if found and not force:
        say(f"vm image {found.sha} cached at {found.dir}")
        return found
    sha = recipe_sha(recipe)
    base = vm_cache_dir()
    for stale in base.glob(f".build-{sha}-*"):
        _remove_build_dir(stale)
    work = base / f".build-{sha}-{secrets.token_hex(4)}"
    out = work / "image"
    root = work / "root"
    out.mkdir(parents=True)
    env = {**os.environ, **_chroot_env()}

    def debootstrap() -> None:
        _run(["debootstrap", "--variant=minbase", recipe.suite, str(root), recipe.mirror],
             timeout=1800, env=env)

    def install() -> None:
        # no service starts inside the chroot
        _write(root / "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
        _write(root / "etc/initramfs-tools/conf.d/meshagents-vm.conf", INITRAMFS_CONF)
        _write(root / "etc/initramfs-tools/modules", INITRAMFS_MODULES)
        with _chroot_mounts(root):
            _run(["chroot", str(root), "apt-get", "update", "-qq"], timeout=600, env=_chroot_env())
            # confold: keep the initramfs settings written above over the package's defaults
            _run(["chroot", str(root), "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                  "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                  *recipe.packages], timeout=3600, env=_chroot_env())

    def configure() -> None:
        with _chroot_mounts(root):
            _configure(root, out, recipe)
        _kernel_out(root, out)

    def filesystem() -> None:
        _run(["mkfs.ext4", "-q", "-F", "-L", "vmroot", "-d", str(root), str(out / "rootfs.raw"), recipe.size],
             timeout=900)
        (out / "recipe.json").write_text(json.dumps({"sha": sha, **recipe.to_json()}, indent=1) + "\n")

    steps: list[Step] = [
        (f"debootstrap {recipe.suite} (minbase)", debootstrap),
        (f"apt-get install {len(recipe.packages)} packages", install),
        ("configure (network unit, sshd, root key, kernel)", configure),
        (f"mkfs.ext4 -d ({recipe.size}, sparse)", filesystem),
    ]
    total = len(steps) + 1
    started = time.monotonic()
    try:
        with _sigterm_raises():
            for n, (title, fn) in enumerate(steps, 1):
                t0 = time.monotonic()
                say(f"[{n}/{total}] {title} ...")
                fn()
                say(f"[{n}/{total}] {title}: {time.monotonic() - t0:.1f} s")
            final = base / sha
            if final.exists():  # forced rebuild: the old image goes only once the new one is whole
                old = base / f".build-{sha}-old-{secrets.token_hex(4)}"
                final.rename(old)
                _remove_build_dir(old)
            out.rename(final)
        say(f"[{total}/{total}] image {sha} at {final}: {time.monotonic() - started:.1f} s in all")
    finally:
        _remove_build_dir(work)
    img = cached(recipe)
    if img is None:
        raise FnError("vm_build_failed", f"image {sha} incomplete after build")
    return img


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM becomes KeyboardInterrupt during the build, so ``subprocess.run`` kills the
    running step (debootstrap, apt) and the build directory is removed, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
