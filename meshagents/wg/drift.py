"""Drift of every hub on this machine: its config edited by hand, or its live interface out of line.

A hub is an interface whose ``<iface>.conf`` sits beside a meshagents ledger of role ``hub``
(``<dir>/.meshagents/<iface>.sqlite``). Uncommitted edits or config-vs-live differences are
errors; a hub whose interface is down, or that cannot be read, is a warning. The catalog
function ``wg_hub_drift`` wraps :func:`hub_findings`; the doctor's ``wg-drift`` check calls
that function by id, so the registry runtime never imports the mesh library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from meshagents.errors import FnError
from meshagents.wg.backend import open_backend
from meshagents.wg.context import WgPaths
from meshagents.wg.hub import drift_of, resolve_netns

DEFAULT_DIRS = (Path("/etc/wireguard"),)


class Finding(TypedDict):
    level: str  # "error" | "warning"
    where: str  # <dir>/<iface>.conf
    message: str


def hub_interfaces(directory: Path) -> list[str]:
    """Interfaces in ``directory`` with both a config and a meshagents ledger (role unchecked)."""
    private = directory / ".meshagents"
    try:
        if not private.is_dir():
            return []
        return sorted(p.stem for p in private.glob("*.sqlite") if (directory / f"{p.stem}.conf").exists())
    except PermissionError:
        return []


def hub_findings(directories: list[Path]) -> list[Finding]:
    findings: list[Finding] = []
    for directory in directories:
        for iface in hub_interfaces(directory):
            findings.extend(_one_hub(directory, iface))
    return findings


def _one_hub(directory: Path, iface: str) -> list[Finding]:
    where = f"{directory}/{iface}.conf"
    paths = WgPaths(iface, directory)
    try:
        with paths.ledger() as led:
            if led.get_meta("role") != "hub":
                return []
        be = open_backend(iface, resolve_netns(paths, None))
        if not be.exists():
            return [Finding(level="warning", where=where, message="hub interface is not up (wg_hub_setup)")]
        d = drift_of(paths, be, None)
    except FnError as exc:
        return [Finding(level="warning", where=where, message=f"cannot check: {exc}")]
    except PermissionError as exc:
        return [Finding(level="warning", where=where, message=f"cannot read: {exc}")]
    out: list[Finding] = []
    if d.get("uncommitted"):
        message = "edited outside meshagents: " + ", ".join(d["uncommitted"])
        out.append(Finding(level="error", where=where, message=message))
    keys = ("interface", "missing_live", "extra_live", "changed")
    live = [f"{k}: {len(v)}" for k in keys if (v := d.get(k))]
    if live:
        message = "live interface differs from config (" + "; ".join(live) + ")"
        out.append(Finding(level="error", where=where, message=message))
    return out
