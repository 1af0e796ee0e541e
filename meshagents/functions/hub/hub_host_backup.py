"""hub_host_backup: one archive of the hub host (PostgreSQL dump, hub store and keys, WireGuard, configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="hub_host_backup", group="hub", requires=["root"])
def hub_host_backup(dest_dir: Path = Path("/var/backups/meshagents")) -> dict[str, Any]:
    """Write hub-<UTC time>.tar.gz (0600) while the services run; live SQLite files are copied consistently.

    Args:
        dest_dir: directory on the host for the archive (made 0700). It holds keys: copy it off the
            host (fn hub backup --host does) and keep it like the keys themselves.
    """
    from meshagents.hubhost import lifecycle

    return lifecycle.backup(dest_dir)
