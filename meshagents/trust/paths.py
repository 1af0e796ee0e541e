"""Where the trust stores live under the state directory (FN_STATE_DIR).

    trust_dir()            <state>/trust              (pinned operator key, rotations, verifier stores)
    serial_store_path()    <state>/trust/serials.sqlite
    token_store_path()     <state>/trust/tokens.sqlite
    audit_path(device)     <state>/audit/<device>.sqlite   (the device's chain AND its nonces)
    audit_devices()        names of every device with an audit store
"""

from __future__ import annotations

import re
from pathlib import Path

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
