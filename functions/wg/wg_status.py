"""wg_status: the mesh interface's peers as JSON, named from the ledger, with online flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.catalog import function


@function(id="wg_status", group="wg", requires=["root", "wireguard"])
def wg_status(
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    drift: bool = False,
) -> dict[str, Any]:
    """Peers with name, endpoint, allowed IPs, handshake age, rx/tx and online (< 180 s); --drift."""
    from meshagents.wg import hub

    return hub.status(interface=interface, config_dir=config_dir, netns=netns, with_drift=drift)
