"""wg_hub_setup: the hub's mesh interface, forwarding, firewall and git-kept wg-quick config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.runtime.catalog import function


@function(id="wg_hub_setup", group="wg", requires=["root", "wireguard"])
def wg_hub_setup(
    interface: str = "wg0",
    address: str = "10.42.0.1/24",
    listen_port: int = 51820,
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    endpoint: str | None = None,
    service_ports: list[int] | None = None,
    firewall: bool = True,
    backend: Literal["auto", "kernel", "userspace"] = "auto",
) -> dict[str, Any]:
    """Set up (or re-check) the hub interface; a second run with the same arguments changes nothing.

    Args:
        interface: the hub's mesh interface (Linux interface name: 1-15 characters, no '/', ':' or spaces).
        address: the hub's own mesh address with the mesh prefix, IPv4 CIDR (e.g. 10.42.0.1/24; /30 at most);
            devices get addresses of that subnet from .10 up, never reused.
        listen_port: UDP port WireGuard listens on (1-65535); opened in the firewall.
        config_dir: directory for <interface>.conf, <interface>.nft (committed to a git repository there) and
            the peer ledger (.meshagents/); created if missing.
        netns: network namespace name under /run/netns to set the hub up in (tests); default or "": the root
            namespace. Recorded in the ledger, so later wg_* calls find it.
        endpoint: the public host:port devices use to reach this hub (e.g. vps.example.org:51820), recorded in
            the ledger for wg_client_config and enrollment; without a port, listen_port is used.
        service_ports: TCP ports of the hub's services accepted only from the mesh subnet (and loopback) and
            dropped from anywhere else; default: 8000 8008 8080 (operator API, homeserver, dashboard).
        firewall: write and apply the nftables table 'inet meshagents_<interface>' (mesh-only service ports,
            no forwarding out of the mesh); --no-firewall leaves nftables alone.
        backend: auto (the kernel's WireGuard if it has it, else userspace; MESHAGENTS_WG_BACKEND overrides),
            kernel, or userspace (wireguard-go).
    """
    from meshagents.wg import hub
    from meshagents.wg.firewall import DEFAULT_SERVICE_PORTS

    return hub.setup(
        interface=interface,
        address=address,
        listen_port=listen_port,
        config_dir=config_dir,
        netns=netns,
        endpoint=endpoint,
        service_ports=service_ports if service_ports else DEFAULT_SERVICE_PORTS,
        backend=backend,
        firewall_rules=firewall,
    )
