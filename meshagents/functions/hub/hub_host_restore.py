"""hub_host_restore: put a hub_host_backup archive back and start the hub again, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="hub_host_restore", group="hub", requires=["root"])
def hub_host_restore(archive: Path) -> dict[str, Any]:
    """Stop the services, restore files and the database (pg_restore --clean), restart in order, check health.

    Args:
        archive: a hub-*.tar.gz made by hub_host_backup, on the host (fn hub restore --host uploads it).
    """
    from meshagents.hubhost import lifecycle

    return lifecycle.restore(archive)
