"""hub_host_upgrade: run the hub from this bundle's code; switch back if the health check fails."""

from __future__ import annotations

from typing import Any

from meshagents.runtime.catalog import function


@function(id="hub_host_upgrade", group="hub", requires=["root"])
def hub_host_upgrade(health_timeout_s: float = 120.0) -> dict[str, Any]:
    """Install this code as a new release, switch to it, restart in order, check health; else roll back.

    Args:
        health_timeout_s: seconds each service gets to answer its health check after the restart.
    """
    from meshagents.hubhost import lifecycle
    from meshagents.state import project_root

    return lifecycle.upgrade(project_root(), health_timeout_s)
