"""`wg-drift`: a hub's WireGuard config edited by hand, or its live interface out of line.

Looks at every hub interface (a ``<iface>.conf`` with a meshagents ledger of role
``hub``) in ``/etc/wireguard`` or the directories in ``MESHAGENTS_WG_CONFIG_DIRS``
(``:``-separated). Uncommitted edits or config-vs-live differences are errors; a hub
whose interface is down is a warning. No hub configured: nothing to report.
"""

from __future__ import annotations

import os
from pathlib import Path

from meshagents.errors import FnError
from meshagents.runtime.doctor.base import Problem

NAME = "wg-drift"


def config_dirs() -> list[Path]:
    env = os.environ.get("MESHAGENTS_WG_CONFIG_DIRS")
    if env:
        return [Path(p) for p in env.split(":") if p]
    return [Path("/etc/wireguard")]


def hub_interfaces(directory: Path) -> list[str]:
    private = directory / ".meshagents"
    try:
        if not private.is_dir():
            return []
        return sorted(p.stem for p in private.glob("*.sqlite") if (directory / f"{p.stem}.conf").exists())
    except PermissionError:
        return []


def check(root: Path) -> list[Problem]:
    from meshagents.wg.backend import open_backend
    from meshagents.wg.context import WgPaths
    from meshagents.wg.hub import drift_of, resolve_netns

    problems: list[Problem] = []
    for directory in config_dirs():
        for iface in hub_interfaces(directory):
            where = f"{directory}/{iface}.conf"
            paths = WgPaths(iface, directory)
            try:
                with paths.ledger() as led:
                    if led.get_meta("role") != "hub":
                        continue
                be = open_backend(iface, resolve_netns(paths, None))
                if not be.exists():
                    problems.append(Problem(NAME, "warning", where, "hub interface is not up (wg_hub_setup)"))
                    continue
                d = drift_of(paths, be, None)
            except FnError as exc:
                problems.append(Problem(NAME, "warning", where, f"cannot check: {exc}"))
                continue
            except PermissionError as exc:
                problems.append(Problem(NAME, "warning", where, f"cannot read: {exc}"))
                continue
            if d.get("uncommitted"):
                problems.append(
                    Problem(NAME, "error", where, "edited outside meshagents: " + ", ".join(d["uncommitted"]))
                )
            live = [
                f"{k}: {len(v)}"
                for k in ("interface", "missing_live", "extra_live", "changed")
                if (v := d.get(k))
            ]
            if live:
                problems.append(
                    Problem(
                        NAME, "error", where, "live interface differs from config (" + "; ".join(live) + ")"
                    )
                )
    return problems
