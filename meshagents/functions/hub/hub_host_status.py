"""hub_host_status: the provisioned hub's units, mesh handshakes, homeserver and certificate."""

from __future__ import annotations

from typing import Any

from meshagents.runtime.catalog import function


@function(id="hub_host_status", group="hub", requires=["root"])
def hub_host_status() -> dict[str, Any]:
    """Units (active, enabled, restarts), WireGuard handshake ages, the homeserver, TLS expiry, and ok."""
    from meshagents.hubhost import lifecycle

    return lifecycle.status()
