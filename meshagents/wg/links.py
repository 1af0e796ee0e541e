"""Links, addresses and routes through pyroute2, in the root or a named namespace."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from meshagents.errors import FnError
from meshagents.wg.netns import check_netns


@contextmanager
def iproute(netns: str | None) -> Iterator[Any]:
    check_netns(netns)
    try:
        from pyroute2 import IPRoute
    except ImportError as exc:  # the "net" extra
        raise FnError(
            "missing_dependency", "pyroute2 is not installed (pip install meshagents[net])"
        ) from exc
    ipr = IPRoute(netns=netns) if netns else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def link_index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def link_exists(ifname: str, netns: str | None) -> bool:
    with iproute(netns) as ipr:
        return link_index(ipr, ifname) is not None


def addresses(ifname: str, netns: str | None) -> list[str]:
    """The IPv4 addresses of ``ifname`` as CIDR text."""
    with iproute(netns) as ipr:
        idx = link_index(ipr, ifname)
        if idx is None:
            return []
        out = []
        for msg in ipr.get_addr(index=idx, family=2):
            out.append(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
        return out


def ensure_up(ifname: str, address_cidr: str, routes: list[str], netns: str | None) -> bool:
    """Give ``ifname`` its address, bring it up, add routes; True if anything changed."""
    iface = ipaddress.ip_interface(address_cidr)
    changed = False
    with iproute(netns) as ipr:
        idx = link_index(ipr, ifname)
        if idx is None:
            raise FnError("wg_interface_missing", f"no link {ifname!r}")
        have = {f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=idx, family=2)}
        if str(iface) not in have:
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            changed = True
        link = ipr.get_links(idx)[0]
        if not link["flags"] & 1:  # IFF_UP
            ipr.link("set", index=idx, state="up")
            changed = True
        for dst in routes:
            net = ipaddress.ip_network(dst, strict=False)
            if net == iface.network:
                continue  # the kernel made this one with the address
            existing = ipr.get_routes(family=2, dst=str(net.network_address), dst_len=net.prefixlen, oif=idx)
            if not any(r.get_attr("RTA_OIF") == idx and r["dst_len"] == net.prefixlen for r in existing):
                ipr.route("add", dst=str(net), oif=idx)
                changed = True
    return changed


def delete_link(ifname: str, netns: str | None) -> bool:
    with iproute(netns) as ipr:
        idx = link_index(ipr, ifname)
        if idx is None:
            return False
        ipr.link("del", index=idx)
        return True
