"""wg_peer_remove: take a device off the hub (it may be added again; its address stays its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="wg_peer_remove", group="wg", requires=["root", "wireguard"])
def wg_peer_remove(
    peer: str,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
) -> dict[str, Any]:
    """Remove a peer (by public key or device name) live and from the config, and commit.

    Args:
        peer: the device to remove: its base64 WireGuard public key or its device name, as recorded in the
            hub's ledger.
        interface: the hub's mesh interface (Linux interface name: 1-15 characters, no '/', ':' or spaces);
            its files are <config_dir>/<interface>.conf and the peer ledger under <config_dir>/.meshagents/.
        config_dir: directory of the hub's wg-quick config, nftables rules (git-kept) and peer ledger, as
            given to wg_hub_setup.
        netns: network namespace name under /run/netns to act in (tests, several hubs on one machine);
            default: the one wg_hub_setup recorded in the ledger (else the root one); "" means the root
            namespace.
    """
    from meshagents.wg import peers

    return peers.remove(who=peer, interface=interface, config_dir=config_dir, netns=netns)
