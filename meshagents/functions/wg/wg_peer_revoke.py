"""wg_peer_revoke: the kill switch — cut a device off now and refuse its key and id forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="wg_peer_revoke", group="wg", requires=["root", "wireguard"])
def wg_peer_revoke(
    peer: str,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    defer_config: bool = False,
) -> dict[str, Any]:
    """Revoke a peer (public key or device name): ledger, then live, then config; never re-added.

    Args:
        peer: the device to revoke: its base64 WireGuard public key or its device name, as recorded in the
            hub's ledger. Its key and name can never be added again.
        interface: see args.toml [hub]
        config_dir: see args.toml [hub]
        netns: see args.toml [hub]
        defer_config: answer once the peer is revoked in the ledger and off the live interface; the
            config rewrite and its git commit finish in the background of this process (the hub's
            revoke API uses it; the ledger is what a restart follows).
    """
    from meshagents.wg import peers

    return peers.remove(
        who=peer, interface=interface, config_dir=config_dir, netns=netns, revoke=True,
        defer_config=defer_config,
    )
