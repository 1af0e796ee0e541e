"""wg_hub_drift: hubs here whose config was edited by hand or whose interface is out of line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="wg_hub_drift", group="wg")
def wg_hub_drift(config_dirs: list[Path] | None = None) -> dict[str, Any]:
    """Findings (level, where, message) for each hub interface found in the config directories.

    Args:
        config_dirs: directories holding hub configs and their meshagents ledgers (repeat the option);
            default /etc/wireguard. A hub that is down or unreadable is a warning, drift an error.
    """
    from meshagents.wg import drift

    dirs = list(config_dirs) if config_dirs else list(drift.DEFAULT_DIRS)
    return {"findings": drift.hub_findings(dirs)}
