"""wg_peer_add: add a device to the hub with the next never-used mesh address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.catalog import function


@function(id="wg_peer_add", group="wg", requires=["root", "wireguard"])
def wg_peer_add(
    public_key: str,
    name: str | None = None,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    preshared: bool = False,
    preshared_key_file: Path | None = None,
    persistent_keepalive: int | None = None,
) -> dict[str, Any]:
    """Add a peer live, in the config and in the ledger in one step; the same key again is a no-op."""
    from meshagents.api import call
    from meshagents.wg import peers
    from meshagents.wg.client import read_key_file

    psk: str | None = None
    if preshared_key_file is not None:
        psk = read_key_file(preshared_key_file, "preshared key")
    elif preshared:
        psk = call("wg_keygen", caller="wg_peer_add", preshared=True)["preshared_key"]
    return peers.add(
        public_key=public_key,
        name=name,
        interface=interface,
        config_dir=config_dir,
        netns=netns,
        preshared_key=psk,
        persistent_keepalive=persistent_keepalive,
    )
