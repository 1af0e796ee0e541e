"""Deep mode: a container becomes a mesh peer in its own right, without privileges.

The host agent does the privileged part from the host side (FIELD-NOTES, Docker):

1. the container's WireGuard key is made by the wg library (``meshagents.wg.keys``,
   what ``wg_keygen`` wraps) and kept 0600 in the state directory, so a restarted
   container re-attaches with the same identity;
2. ``wireguard-go <iface>`` starts in the *host's* network namespace: its UDP socket,
   the private key and ``/dev/net/tun`` stay on the host;
3. its TUN interface is moved into the container's network namespace;
4. keys and the hub peer are set over UAPI from the host;
5. the address and the link state are set with ``nsenter --net=/proc/<pid>/ns/net ip``.

The container sees only ``lo`` and the mesh interface and needs no NET_ADMIN; it
cannot delete or re-address the interface from inside. When the container stops,
its namespace goes, the interface with it, and wireguard-go exits by itself: call
``attach`` again on the engine's ``start`` event.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from meshagents.docker import uapi
from meshagents.docker.engine import require_running
from meshagents.docker.errors import docker_errors
from meshagents.docker.manifest import container_room_alias
from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.state import state_dir
from meshagents.wg.keys import new_key_pair
from meshagents.wg.model import PeerSpec

IFACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DEFAULT_KEEPALIVE = 25


@dataclass(frozen=True)
class DeepIdentity:
    container: str
    public_key: str
    key_file: Path


@dataclass(frozen=True)
class DeepAttachment:
    container: str
    container_id: str
    interface: str
    public_key: str
    mesh_address: str
    allowed_ips: list[str]
    hub_endpoint: str
    room_alias: str
    pid: int
    reused: bool


def default_interface(container_id: str) -> str:
    """A machine-wide unique interface name (the UAPI socket directory is global)."""
    return "mc" + container_id[:13]


def parse_endpoint(endpoint: str) -> str:
    """``ip:port`` or ``[v6]:port`` as UAPI wants it (no host names: resolve first)."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise FnError("rejected_args", f"hub endpoint {endpoint!r} must be ip:port")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError as exc:
        raise FnError("rejected_args", f"hub endpoint {endpoint!r}: {host!r} is not an IP address") from exc
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def parse_address(mesh_address: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """The container's mesh address; without a prefix the mesh's /24 is assumed."""
    text = mesh_address if "/" in mesh_address else mesh_address + "/24"
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise FnError("rejected_args", f"mesh address {mesh_address!r} is not an address") from exc


# --- the container's key, kept on the host ------------------------------------------


def _key_file(container: str) -> Path:
    if not NAME_RE.match(container):
        raise FnError("rejected_args", f"container name {container!r} cannot name a key file")
    return state_dir() / "docker" / "deep" / f"{container}.json"


def identity(container: str, *, create: bool = True) -> DeepIdentity:
    """The container's WireGuard identity, made once (``wg.keys.new_key_pair``) and then reused."""
    path = _key_file(container)
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return DeepIdentity(container, str(data["public_key"]), path)
    if not create:
        raise FnError("deep_not_enrolled", f"container {container!r} has no deep-mode key yet")
    keys = new_key_pair()
    _write_private_json(path, {"private_key": keys["private_key"], "public_key": keys["public_key"]})
    return DeepIdentity(container, keys["public_key"], path)


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(data), fsync=False)  # atomic: never a half-written key file


def _remember_attach(ident: DeepIdentity, settings: dict[str, Any]) -> None:
    """Keep the attach settings next to the key, for ``reattach`` on the next start."""
    data = json.loads(ident.key_file.read_text(encoding="utf-8"))
    data["attach"] = settings
    _write_private_json(ident.key_file, data)


def saved_attach(container: str) -> dict[str, Any]:
    """The settings of the container's last successful attach (``deep_not_enrolled`` if none)."""
    path = _key_file(container)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if "attach" not in data:
        raise FnError("deep_not_enrolled", f"container {container!r} was never attached in deep mode")
    return dict(data["attach"])


def _private_key(ident: DeepIdentity) -> str:
    return str(json.loads(ident.key_file.read_text(encoding="utf-8"))["private_key"])


# --- namespaces and links -----------------------------------------------------------


def _in_ns(netns: str | None, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["nsenter", f"--net={netns}", *cmd] if netns else list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise FnError(
            "deep_attach_failed",
            f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}",
            command=list(cmd),
        )
    return proc


def _link_exists(netns: str | None, iface: str) -> bool:
    return _in_ns(netns, "ip", "-o", "link", "show", "dev", iface, check=False).returncode == 0


def _same_netns(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _container_pid(container: Container) -> int:
    require_running(container)
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if pid <= 0:
        raise FnError(
            "container_not_running", f"container {container.name!r} has no process", container=container.name
        )
    return pid


def _wait_socket_gone(iface: str, timeout: float = 3.0) -> None:
    # After a restart the previous daemon exits ~10 ms after the old namespace goes;
    # until then it holds the UAPI socket and a new one would refuse to start.
    deadline = time.monotonic() + timeout
    while uapi.socket_path(iface).exists():
        if uapi.is_stale(iface):  # its daemon died without cleaning up (kill -9)
            uapi.socket_path(iface).unlink(missing_ok=True)
            return
        if time.monotonic() > deadline:
            raise FnError(
                "deep_attach_failed",
                f"{uapi.socket_path(iface)} is still held by another wireguard-go",
                interface=iface,
            )
        time.sleep(0.01)


def _start_wireguard(host_netns: str | None, iface: str) -> None:
    # Daemon mode on purpose: wireguard-go forks, the parent exits once the TUN and
    # the UAPI socket exist, and the daemon belongs to no caller's process tree.
    argv = ["wireguard-go", iface]
    if host_netns:
        argv = ["nsenter", f"--net={host_netns}", *argv]
    env = {k: v for k, v in os.environ.items() if k != "WG_PROCESS_FOREGROUND"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=env)
    if proc.returncode != 0:
        raise FnError(
            "deep_attach_failed", f"wireguard-go {iface}: {proc.stderr.strip()[-500:]}", interface=iface
        )
    # The parent exits once the socket is bound, but the daemon still has to look its
    # TUN up *by name in this namespace*: moving the link before it has done so kills
    # it. It answers UAPI only after that step, so wait for a real answer.
    deadline = time.monotonic() + 3.0
    while True:
        try:
            uapi.check_answers(iface)
            return
        except FnError as exc:
            if time.monotonic() > deadline:
                raise FnError(
                    "deep_attach_failed", f"wireguard-go {iface} did not come up: {exc.message}"
                ) from exc
            time.sleep(0.005)


def attach(
    container: Container,
    *,
    mesh_address: str,
    hub_public_key: str,
    hub_endpoint: str,
    allowed_ips: Sequence[str] | None = None,
    keepalive: int = DEFAULT_KEEPALIVE,
    host_netns: str | None = None,
    interface: str | None = None,
) -> DeepAttachment:
    """Give ``container`` its own WireGuard interface and mesh address (idempotent)."""
    name = container.name or ""
    addr = parse_address(mesh_address)
    endpoint = parse_endpoint(hub_endpoint)
    uapi.key_hex(hub_public_key)  # rejected_args before anything is started
    try:
        nets = [str(ipaddress.ip_network(n, strict=False)) for n in (allowed_ips or [str(addr.network)])]
    except ValueError as exc:
        raise FnError("rejected_args", f"allowed IPs {list(allowed_ips or [])}: {exc}") from exc
    if not 0 <= keepalive <= 65535:
        raise FnError("rejected_args", "keepalive must be in [0, 65535] seconds")
    iface = interface or default_interface(container.id or "")
    if not IFACE_RE.match(iface):
        raise FnError("rejected_args", f"interface name {iface!r}: at most 15 of [A-Za-z0-9_.-]")
    if host_netns is not None and not os.path.exists(host_netns):
        raise FnError("rejected_args", f"host network namespace {host_netns!r} does not exist")
    with docker_errors(container=name):
        pid = _container_pid(container)
    cont_ns = f"/proc/{pid}/ns/net"
    if _same_netns(cont_ns, host_netns or "/proc/self/ns/net"):
        raise FnError(
            "rejected_args",
            f"container {name!r} shares the host's network namespace (network_mode=host): deep mode "
            "would put the mesh interface on the host",
            container=name,
        )
    ident = identity(name)
    reused = _link_exists(cont_ns, iface) and uapi.socket_path(iface).exists()
    try:
        if not reused:
            if _link_exists(host_netns, iface):  # left over by an attempt that failed half-way
                _in_ns(host_netns, "ip", "link", "del", iface)
            _wait_socket_gone(iface)
            _start_wireguard(host_netns, iface)
            _in_ns(host_netns, "ip", "link", "set", iface, "netns", str(pid))
        hub = PeerSpec(hub_public_key, tuple(nets), endpoint=endpoint, persistent_keepalive=keepalive)
        uapi.configure(iface, private_key=_private_key(ident), peers=[hub])
        _in_ns(cont_ns, "ip", "addr", "replace", str(addr), "dev", iface)
        _in_ns(cont_ns, "ip", "link", "set", iface, "up")
        for net in nets:
            if ipaddress.ip_network(net) != addr.network:
                _in_ns(cont_ns, "ip", "route", "replace", net, "dev", iface)
    except FnError:
        if not reused:
            _remove_link(cont_ns, iface)
            _remove_link(host_netns, iface)
            if uapi.socket_path(iface).exists() and uapi.is_stale(iface):
                uapi.socket_path(iface).unlink(missing_ok=True)
        raise
    _remember_attach(
        ident,
        {
            "mesh_address": str(addr),
            "hub_public_key": hub_public_key,
            "hub_endpoint": endpoint,
            "allowed_ips": nets,
            "keepalive": keepalive,
            "host_netns": host_netns,
            "interface": interface,
        },
    )
    return DeepAttachment(
        container=name,
        container_id=container.id or "",
        interface=iface,
        public_key=ident.public_key,
        mesh_address=str(addr),
        allowed_ips=nets,
        hub_endpoint=endpoint,
        room_alias=container_room_alias(name),
        pid=pid,
        reused=reused,
    )


def reattach(container: Container) -> DeepAttachment:
    """Attach again with the settings of the last attach (after the container restarted)."""
    return attach(container, **saved_attach(container.name or ""))


def watch_starts(
    client: docker.DockerClient, *, max_seconds: float, names: Sequence[str] | None = None
) -> Iterator[str]:
    """Names of containers that start within the next ``max_seconds``, from now.

    The stream is opened by this call (not lazily at the first ``next``), so a start
    right after it is not missed. The engine itself ends the stream at ``until``, so
    iterating always returns; the agent loops and calls ``reattach`` for each name.
    """
    now = time.time()
    filters: dict[str, Any] = {"type": "container", "event": "start"}
    if names:
        filters["container"] = list(names)
    with docker_errors():
        stream = client.api.events(since=now, until=now + max_seconds, filters=filters, decode=True)
    return _start_names(stream)


def _start_names(stream: Any) -> Iterator[str]:
    try:
        with docker_errors():
            for event in stream:
                name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
                if name:
                    yield str(name)
    finally:
        stream.close()


def _remove_link(netns: str | None, iface: str) -> None:
    try:
        if (netns is None or os.path.exists(netns)) and _link_exists(netns, iface):
            _in_ns(netns, "ip", "link", "del", iface, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def detach(container: Container, interface: str | None = None) -> bool:
    """Remove the container's mesh interface (wireguard-go then exits). True if one was there."""
    iface = interface or default_interface(container.id or "")
    with docker_errors(container=container.name):
        container.reload()
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if container.status != "running" or pid <= 0:
        return False
    cont_ns = f"/proc/{pid}/ns/net"
    if not _link_exists(cont_ns, iface):
        return False
    _in_ns(cont_ns, "ip", "link", "del", iface)
    return True
