"""Mesh address allocation (pure): from ``.10`` up, each address handed out once, ever."""

from __future__ import annotations

import ipaddress

from meshagents.errors import FnError

FIRST_HOST = 10


def parse_hub_address(address_cidr: str) -> ipaddress.IPv4Interface:
    try:
        iface = ipaddress.IPv4Interface(address_cidr)
    except ValueError as exc:
        raise FnError(
            "invalid_address", f"hub address must be IPv4 CIDR like 10.42.0.1/24: {address_cidr!r}"
        ) from exc
    if iface.network.prefixlen > 30:
        raise FnError("invalid_address", f"mesh subnet {iface.network} is too small")
    return iface


def next_host(hub: ipaddress.IPv4Interface, last_host: int | None, first_host: int = FIRST_HOST) -> int:
    """The host index after ``last_host`` (the highest ever allocated), skipping the hub's own."""
    net = hub.network
    hub_index = int(hub.ip) - int(net.network_address)
    candidate = first_host if last_host is None else max(last_host + 1, first_host)
    if candidate == hub_index:
        candidate += 1
    if candidate >= net.num_addresses - 1:  # the last one is broadcast
        raise FnError("address_pool_exhausted", f"no address left in {net} (addresses are never reused)")
    return candidate


def host_address(hub: ipaddress.IPv4Interface, index: int) -> ipaddress.IPv4Address:
    return hub.network.network_address + index
