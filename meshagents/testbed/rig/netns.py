"""Network namespaces and veth links for the rig (iproute2 as subprocesses).

    ns = Namespaces()
    ns.add("rh1a2b3c")                                  # with lo up; remembered for teardown
    ns.veth("rh..", "rv..h1", "rd..1", "rv..d1", "198.19.1.1/24", "198.19.1.2/24")
    ns.run("rh..", ["ip", "addr"])                      # nsenter --net=/run/netns/<ns> ...
    ns.close()                                          # delete every namespace it made

Nothing here touches the root namespace's addresses or routes: veths are created
straight inside their namespaces (``ip link add A netns X type veth peer name B netns Y``).
``private_routes`` is the pure guard the tests use to prove the root namespace stayed clean.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from meshagents import procs

NETNS_DIR = Path("/run/netns")
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def nsenter(ns: str) -> list[str]:
    """The argv prefix that runs a program in namespace ``ns`` (not ``ip netns exec``,
    which gives the child a private mount table; see FIELD-NOTES, Docker)."""
    return ["nsenter", f"--net={NETNS_DIR / ns}"]


def private_routes(ip_route_text: str) -> set[str]:
    """Destinations in ``ip -4 route`` output that fall in 10/8, 172.16/12 or 192.168/16 (pure)."""
    found: set[str] = set()
    for line in ip_route_text.splitlines():
        words = line.split()
        if not words:
            continue
        dest = words[0]
        if dest == "default":
            continue
        try:
            net = ipaddress.ip_network(dest, strict=False)
        except ValueError:
            continue
        if any(net.version == p.version and net.subnet_of(p) for p in _PRIVATE):  # type: ignore[arg-type]
            found.add(dest)
    return found


def _run(argv: list[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return procs.run(argv, code="rig_command_failed", check=check, timeout=timeout)


class Namespaces:
    """The namespaces one rig made, so teardown deletes exactly those."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def add(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.made.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def run(self, ns: str, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*nsenter(ns), *argv], check=check)

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str, addr_a: str, addr_b: str) -> None:
        """A veth pair made directly inside two namespaces, addressed and up."""
        _run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            _run(["ip", "-n", ns, "addr", "add", addr, "dev", ifname])
            _run(["ip", "-n", ns, "link", "set", ifname, "up"])

    def link_set(self, ns: str, ifname: str, state: str) -> None:
        _run(["ip", "-n", ns, "link", "set", ifname, state])

    def delete_link(self, ns: str, ifname: str) -> None:
        _run(["ip", "-n", ns, "link", "del", ifname], check=False)

    def close(self) -> list[str]:
        """Delete every namespace made here (newest first); returns the ones that stayed."""
        left: list[str] = []
        for ns in reversed(self.made):
            proc = _run(["ip", "netns", "del", ns], check=False)
            if proc.returncode != 0 and (NETNS_DIR / ns).exists():
                left.append(ns)
        self.made = left
        return left
