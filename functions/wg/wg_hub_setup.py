"""wg_hub_setup: the hub's mesh interface, forwarding, firewall and git-kept wg-quick config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.catalog import function


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
    """Set up (or re-check) the hub interface; a second run with the same arguments changes nothing."""
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
