"""Where the trust stores live under the state directory (FN_STATE_DIR).

    trust_dir()            <state>/trust              (pinned operator key, rotations, verifier stores)
    serial_store_path()    <state>/trust/serials.sqlite
    token_store_path()     <state>/trust/tokens.sqlite
    audit_path(device)     <state>/audit/<device>.sqlite   (the device's chain AND its nonces)
                           + <device>.checkpoints.jsonl (signed checkpoints) + <device>.manifests.jsonl
    audit_devices()        names of every device with an audit store
    agent_config_path()    <state>/device_agent/config.json  (where enrollment writes the agent's config)
    audit_sites(configs=()) -> {device: AuditSite}   every chain the agents on this machine write

The chain's place is decided HERE, once: the agent's config defaults its ``audit_path``
to :func:`audit_path` of its device id, and the verifier globs :func:`audit_dir`. A
config that still names another ``audit_path`` (tests, old installs) is found too, by
reading the agent config at :func:`agent_config_path` (or the ones given).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.state import state_dir

_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def trust_dir() -> Path:
    path = state_dir() / "trust"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def serial_store_path() -> Path:
    return trust_dir() / "serials.sqlite"


def token_store_path() -> Path:
    return trust_dir() / "tokens.sqlite"


def audit_dir() -> Path:
    path = state_dir() / "audit"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def audit_path(device: str) -> Path:
    if not _DEVICE.fullmatch(device) or ".." in device:
        raise FnError("bad_usage", f"invalid device name {device!r}")
    return audit_dir() / f"{device}.sqlite"


def audit_devices() -> list[str]:
    return sorted(p.stem for p in audit_dir().glob("*.sqlite"))


def agent_config_path() -> Path:
    return state_dir() / "device_agent" / "config.json"


@dataclass(frozen=True)
class AuditSite:
    """One chain on this machine and what its agent's config says about it."""

    device: str
    path: Path
    config: Path | None = None
    manifest_path: Path | None = None
    operator_key: str | None = None
    hub_url: str | None = None


def _site_from_config(path: Path) -> AuditSite | None:
    # Read as plain JSON (functions never import the agent app); the agent validates it fully.
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("device_id"), str):
        return None
    base = path.resolve().parent

    def rel(value: Any) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else base / p

    device = data["device_id"]
    try:
        chain = rel(data.get("audit_path")) or audit_path(device)
    except FnError:
        return None
    op = data.get("operator_key")
    hub = data.get("hub_url")
    return AuditSite(
        device,
        chain,
        path,
        rel(data.get("manifest_path")),
        op if isinstance(op, str) else None,
        hub.rstrip("/") if isinstance(hub, str) and hub else None,
    )


def audit_sites(configs: Sequence[Path] = ()) -> dict[str, AuditSite]:
    """Every chain in :func:`audit_dir`, plus those the agent configs name (default config first)."""
    sites = {name: AuditSite(name, audit_dir() / f"{name}.sqlite") for name in audit_devices()}
    for cfg in (agent_config_path(), *configs):
        site = _site_from_config(cfg) if cfg.exists() else None
        if site is not None and (site.path.exists() or site.device not in sites):
            sites[site.device] = site
    return sites
