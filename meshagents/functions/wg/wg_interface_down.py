"""wg_interface_down: stop a mesh interface (hub or client) — its wireguard-go and firewall table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="wg_interface_down", group="wg", requires=["root", "wireguard"])
def wg_interface_down(
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
) -> dict[str, Any]:
    """Delete the live interface (its wireguard-go exits) and nftables table; config and ledger stay.

    Args:
        interface: the mesh interface to stop (hub or client; 1-15 characters, no '/', ':' or spaces).
        config_dir: directory of the interface's config and ledger; they are kept, only read here to find the
            namespace.
        netns: network namespace name under /run/netns to act in (tests, several hubs on one machine);
            default: the one wg_hub_setup recorded in the ledger (else the root one); "" means the root
            namespace.
    """
    from meshagents.wg import hub

    return hub.interface_down(interface=interface, config_dir=config_dir, netns=netns)
