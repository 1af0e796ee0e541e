"""wg_peer_revoke: the kill switch — cut a device off now and refuse its key and id forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.catalog import function


@function(id="wg_peer_revoke", group="wg", requires=["root", "wireguard"])
def wg_peer_revoke(
    peer: str,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
) -> dict[str, Any]:
    """Revoke a peer (public key or device name): removed live first, then from config; never re-added."""
    from meshagents.wg import peers

    return peers.remove(who=peer, interface=interface, config_dir=config_dir, netns=netns, revoke=True)
