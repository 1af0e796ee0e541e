"""`wg-drift`: a hub's WireGuard config edited by hand, or its live interface out of line.

Looks at every hub interface in ``/etc/wireguard`` or the directories in
``MESHAGENTS_WG_CONFIG_DIRS`` (``:``-separated) through the catalog function
``wg_hub_drift`` (called by id: the registry runtime does not import the mesh library;
the logic is ``meshagents/wg/drift.py``). Uncommitted edits or config-vs-live differences
are errors; a hub whose interface is down is a warning. No hub configured: nothing to report.
"""

from __future__ import annotations

import os
from pathlib import Path

from meshagents.runtime.api import call
from meshagents.runtime.doctor.base import Problem

NAME = "wg-drift"


def config_dirs() -> list[Path]:
    env = os.environ.get("MESHAGENTS_WG_CONFIG_DIRS")
    if env:
        return [Path(p) for p in env.split(":") if p]
    return [Path("/etc/wireguard")]


def check(root: Path) -> list[Problem]:
    found = call("wg_hub_drift", caller="doctor", config_dirs=config_dirs())["findings"]
    return [Problem(NAME, f["level"], f["where"], f["message"]) for f in found]
