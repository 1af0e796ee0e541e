"""hub_service_start: start the wg_hub service as a detached process (no systemd needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents import hubctl
from meshagents.runtime.catalog import function


@function(id="hub_service_start", group="hub", requires=["root"])
def hub_service_start(
    config: Path = Path("/etc/meshagents/wg_hub.toml"), wait_s: float = 30.0
) -> dict[str, Any]:
    """Start the hub in its own session (pidfile and log in its state dir); idempotent; waits for /healthz.

    Args:
        config: the hub service's TOML config (written by hub_config_write), given to the hub; its
            operator_port and state directory (pidfile, wg_hub.log) are read here.
        wait_s: seconds to wait for http://127.0.0.1:<operator_port>/healthz to answer 200 before failing with
            hub_start_timeout.
    """
    return hubctl.start(config, wait_s)
