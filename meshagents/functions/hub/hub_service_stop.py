"""hub_service_stop: stop a hub started by hub_service_start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents import hubctl
from meshagents.runtime.catalog import function


@function(id="hub_service_stop", group="hub", requires=["root"])
def hub_service_stop(config: Path = Path("/etc/meshagents/wg_hub.toml")) -> dict[str, Any]:
    """Stop the hub process named by its pidfile (SIGTERM, then SIGKILL after 10 s).

    Args:
        config: the hub service's TOML config (written by hub_config_write); names the state directory with
            the pidfile.
    """
    return hubctl.stop(config)
