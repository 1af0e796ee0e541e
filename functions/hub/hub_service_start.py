"""hub_service_start: start the wg_hub service as a detached process (no systemd needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents import hubctl
from meshagents.catalog import function


@function(id="hub_service_start", group="hub", requires=["root"])
def hub_service_start(
    config: Path = Path("/etc/meshagents/wg_hub.toml"), wait_s: float = 30.0
) -> dict[str, Any]:
    """Start the hub in its own session (pidfile and log in its state dir); idempotent; waits for /healthz."""
    return hubctl.start(config, wait_s)
