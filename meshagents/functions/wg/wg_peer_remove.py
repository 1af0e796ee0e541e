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
        interface: see args.toml [hub]
        config_dir: see args.toml [hub]
        netns: see args.toml [hub]
    """
    from meshagents.wg import peers

    return peers.remove(who=peer, interface=interface, config_dir=config_dir, netns=netns)
