"""wg_status: the mesh interface's peers as JSON, named from the ledger, with online flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="wg_status", group="wg", requires=["root", "wireguard"])
def wg_status(
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    netns: str | None = None,
    drift: bool = False,
) -> dict[str, Any]:
    """Peers with name, endpoint, allowed IPs, handshake age, rx/tx and online (< 180 s); --drift.

    Args:
        interface: the mesh interface to report on (hub or client; 1-15 characters, no '/', ':' or spaces);
            peer names come from its ledger when there is one.
        config_dir: directory of the interface's config and ledger (names, namespace).
        netns: network namespace name under /run/netns to act in (tests, several hubs on one machine);
            default: the one wg_hub_setup recorded in the ledger (else the root one); "" means the root
            namespace.
        drift: also report drift: uncommitted edits of the config and rules in git (diff with keys redacted)
            and differences between the config and the live interface.
    """
    from meshagents.wg import hub

    return hub.status(interface=interface, config_dir=config_dir, netns=netns, with_drift=drift)
