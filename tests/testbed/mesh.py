"""A real WireGuard mesh in network namespaces: one hub and N devices, wireguard-go everywhere.

    from tests.testbed.mesh import Mesh

    with Mesh(devices=2, workdir=tmp_path) as mesh:   # or the pytest fixtures below
        mesh.hub.netns / .interface / .config_dir / .address ("10.42.0.1") / .public_key
        mesh.hub_args                 # {"interface", "config_dir", "netns"} for any wg_* call on the hub
        mesh.devices[i].name / .netns / .interface / .config_dir / .address / .public_key
                       .private_key_file / .endpoint (hub underlay "198.19.<i>.1:<port>")
        mesh.add_device(name=None, preshared=False)   # keygen on the device, wg_peer_add on the hub,
                                      # wg_client_config, wg_client_install: a new Device
        mesh.reconnect(device)        # re-run wg_client_install on it (fresh session after hub changes)
        mesh.ping(node, "10.42.0.1", count=1, wait_s=1.0) -> bool   # from inside node's netns
        mesh.run(node, ["ip", "addr"]) -> CompletedProcess           # any command in node's netns
        mesh.expose(mesh.hub) -> ("198.18.a.b", "198.18.a.b+1")      # veth root ns <-> node (/30)
        mesh.call("wg_status", **mesh.hub_args)                      # meshagents.runtime.api.call

Every step goes through the catalog functions (``meshagents.runtime.api.call``), so the rig is
also their integration test. Topology: each device namespace has a veth to the hub
namespace (underlay ``198.19.<i>.1`` hub side / ``.2`` device side, inside namespaces
only); the mesh is 10.42.0.0/24 on the WireGuard interfaces. The root namespace gets no
address or route at all.

Per-run names (``secrets.token_hex(3)``): namespaces ``mh<hex>`` / ``md<hex><i>``,
WireGuard interfaces ``wh<hex>`` / ``wd<hex><i>`` (the UAPI socket directory is
machine-wide, so these must be unique machine-wide), veths ``mv<hex>h<i>`` / ``d<i>``.
Teardown deletes every interface (wireguard-go exits with its TUN), namespace and temp
directory, even when the body raised. ``hub_interface`` / ``listen_port`` / ``address``
are parameters so other layers (hub service, e2e, docker deep mode) can shape it.

Pytest: ``mesh`` (hub + 2 devices) and ``mesh_factory`` (call it with ``devices=N``);
make them visible with ``from tests.testbed.mesh import mesh, mesh_factory  # noqa: F401``
in a conftest. Needs root, wireguard-go, iproute2 (nsenter), nftables, iputils-ping, git.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NETNS_DIR = Path("/run/netns")


@dataclass
class Node:
    name: str
    netns: str
    interface: str
    config_dir: Path
    address: str = ""
    public_key: str = ""


@dataclass
class Device(Node):
    private_key_file: Path = Path()
    endpoint: str = ""
    index: int = 0


class Mesh:
    """A hub and devices in namespaces; a context manager (see the module docstring)."""

    hub: Node
    devices: list[Device]

    def __init__(
        self,
        devices: int = 2,
        workdir: Path | None = None,
        *,
        hub_address: str = "10.42.0.1/24",
        listen_port: int = 51820,
        service_ports: list[int] | None = None,
    ) -> None:
        self.devices_wanted = devices
        self.suffix = secrets.token_hex(3)
        self.hub_address = hub_address
        self.listen_port = listen_port
        self.service_ports = service_ports
        self.devices = []
        self._exposed: list[str] = []
        self._namespaces = []
        self._interfaces = []
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"mesh-{self.suffix}-")) if workdir is None else workdir

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def call(function_id: str, **kwargs: Any) -> Any:
        from meshagents.runtime.api import call

        return call(function_id, caller="tests.mesh", **kwargs)

    @staticmethod
    def run(node: Node | str, argv: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
        ns = node if isinstance(node, str) else node.netns
        return subprocess.run(
            ["nsenter", f"--net={NETNS_DIR / ns}", *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def expose(self, node: Node) -> tuple[str, str]:
        """A veth from the root namespace to ``node``: (root side, node side) addresses.

        For what must be reached from the root namespace (the hub's public ``/enroll``,
        a test client): a random 198.18.x.y/30 (never 10/8, 172.16/12 or 192.168/16 in
        the root namespace). Removed with the namespace at teardown.
        """
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        n = len(self._exposed)
        for _ in range(50):
            a, b = secrets.randbelow(256), secrets.randbelow(64) * 4
            if f"198.18.{a}.{b + 1}/" not in used and f"198.18.{a}.{b + 2}/" not in used:
                break
        root_if, node_if = f"mx{self.suffix}r{n}", f"mx{self.suffix}n{n}"
        subprocess.run(
            ["ip", "link", "add", root_if, "type", "veth", "peer", "name", node_if, "netns", node.netns],
            check=True,
            capture_output=True,
        )
        self._exposed.append(root_if)
        subprocess.run(["ip", "addr", "add", f"198.18.{a}.{b + 1}/30", "dev", root_if], check=True)
        subprocess.run(["ip", "link", "set", root_if, "up"], check=True)
        self.run(node, ["ip", "addr", "add", f"198.18.{a}.{b + 2}/30", "dev", node_if], check=True)
        self.run(node, ["ip", "link", "set", node_if, "up"], check=True)
        return f"198.18.{a}.{b + 1}", f"198.18.{a}.{b + 2}"

    def ping(self, node: Node, address: str, count: int = 1, wait_s: float = 1.0) -> bool:
        proc = self.run(node, ["ping", "-n", "-q", "-c", str(count), "-W", str(wait_s), address])
        return proc.returncode == 0

    @property
    def hub_args(self) -> dict[str, Any]:
        return {"interface": self.hub.interface, "config_dir": self.hub.config_dir, "netns": self.hub.netns}

    def _netns(self, name: str) -> None:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self._namespaces.append(name)
        self.run(name, ["ip", "link", "set", "lo", "up"], check=True)

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Mesh:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        assert self.workdir is not None
        s = self.suffix
        hub_ns, hub_if = f"mh{s}", f"wh{s}"
        self._netns(hub_ns)
        self.hub = Node(name="hub", netns=hub_ns, interface=hub_if, config_dir=self.workdir / "hub")
        self._interfaces.append((hub_ns, hub_if))
        kwargs: dict[str, Any] = {}
        if self.service_ports:
            kwargs["service_ports"] = self.service_ports
        out = self.call(
            "wg_hub_setup",
            interface=hub_if,
            netns=hub_ns,
            config_dir=self.hub.config_dir,
            address=self.hub_address,
            listen_port=self.listen_port,
            **kwargs,
        )
        self.hub.public_key = out["public_key"]
        self.hub.address = out["address"].split("/")[0]
        for _ in range(self.devices_wanted):
            self.add_device()

    def add_device(self, name: str | None = None, *, preshared: bool = False) -> Device:
        assert self.workdir is not None
        i = len(self.devices) + 1
        s = self.suffix
        dev = Device(
            name=name or f"dev{i}-{s}",
            netns=f"md{s}{i}",
            interface=f"wd{s}{i}",
            config_dir=self.workdir / f"dev{i}",
            index=i,
        )
        self._netns(dev.netns)
        # underlay: a veth from the hub namespace to the device namespace
        vh, vd = f"mv{s}h{i}", f"mv{s}d{i}"
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                vh,
                "netns",
                self.hub.netns,
                "type",
                "veth",
                "peer",
                "name",
                vd,
                "netns",
                dev.netns,
            ],
            check=True,
            capture_output=True,
        )
        self.run(self.hub.netns, ["ip", "addr", "add", f"198.19.{i}.1/24", "dev", vh], check=True)
        self.run(self.hub.netns, ["ip", "link", "set", vh, "up"], check=True)
        self.run(dev.netns, ["ip", "addr", "add", f"198.19.{i}.2/24", "dev", vd], check=True)
        self.run(dev.netns, ["ip", "link", "set", vd, "up"], check=True)
        dev.endpoint = f"198.19.{i}.1:{self.listen_port}"
        # keys made "on the device": the private half stays in the device's directory
        dev.config_dir.mkdir(parents=True, mode=0o700)
        keys = self.call("wg_keygen")
        dev.private_key_file = dev.config_dir / "private.key"
        fd = os.open(dev.private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(keys["private_key"] + "\n")
        dev.public_key = keys["public_key"]
        added = self.call(
            "wg_peer_add", public_key=dev.public_key, name=dev.name, preshared=preshared, **self.hub_args
        )
        dev.address = added["address"]
        client_conf = dev.config_dir / "client.conf"
        self.call(
            "wg_client_config",
            peer=dev.name,
            interface=self.hub.interface,
            config_dir=self.hub.config_dir,
            endpoint=dev.endpoint,
            out=client_conf,
        )
        self._interfaces.append((dev.netns, dev.interface))
        self.reconnect(dev)
        self.devices.append(dev)
        return dev

    def reconnect(self, dev: Device) -> None:
        """(Re)install the device's client config: a fresh session with the hub at once.

        After the hub drops and re-adds a peer, or restarts, the device would otherwise
        sit on its old session until WireGuard's rekey timeout (~13 s).
        """
        self.call(
            "wg_client_install",
            config_file=dev.config_dir / "client.conf",
            interface=dev.interface,
            config_dir=dev.config_dir,
            netns=dev.netns,
            private_key_file=dev.private_key_file,
            systemd=False,
        )

    def close(self) -> None:
        errors: list[str] = []
        for ns, ifname in reversed(self._interfaces):
            with contextlib.suppress(Exception):
                self.run(ns, ["ip", "link", "del", ifname])
        for root_if in self._exposed:
            subprocess.run(["ip", "link", "del", root_if], capture_output=True)  # gone already, normally
        self._exposed.clear()
        for ns in reversed(self._namespaces):
            proc = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if proc.returncode != 0 and (NETNS_DIR / ns).exists():
                errors.append(f"netns {ns}: {proc.stderr.strip()}")
        for _, ifname in self._interfaces:
            sock = Path("/var/run/wireguard") / f"{ifname}.sock"
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()  # only if its daemon died without cleaning up
        self._interfaces.clear()
        self._namespaces.clear()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise RuntimeError("mesh teardown: " + "; ".join(errors))


def require_mesh_tools() -> None:
    from tests.testbed.host import require_binary, require_root

    require_root()
    require_binary("wireguard-go", "nsenter", "ip", "nft", "ping", "git", "sysctl")
    if not Path("/dev/net/tun").exists():
        pytest.skip("needs /dev/net/tun")


@pytest.fixture
def mesh_factory(tmp_path: Path, state_dir: Path) -> Iterator[Callable[..., Mesh]]:
    """``mesh_factory(devices=N, **kw)`` -> a started Mesh, torn down after the test."""
    require_mesh_tools()
    made: list[Mesh] = []

    def make(devices: int = 2, **kw: Any) -> Mesh:
        m = Mesh(devices=devices, workdir=tmp_path / f"mesh{len(made)}", **kw)
        made.append(m)
        m.__enter__()
        return m

    try:
        yield make
    finally:
        for m in reversed(made):
            m.close()


@pytest.fixture
def mesh(mesh_factory: Callable[..., Mesh]) -> Mesh:
    """A hub and two devices, up and peered."""
    return mesh_factory(devices=2)
