"""The agent's ready marker: ``<data_dir>/ready.json``, written once the agent can take commands.

    write(data_dir, pid=..., device_room=..., approvals_room=..., matrix_device=...)
    clear(data_dir)                       # at start (a stale marker must not count) and at stop
    read(path) -> dict | None             # None when absent or unreadable (never raises)
    marker_for_config(config_json) -> Path

"Ready" means what an operator's first command needs: the agent logged in (its device keys
are on the homeserver, cross-signed, so the operator's client shares its room key with
it) and joined its device room and the approvals room. Before that a command is sent to
a room the agent is not in, encrypted for devices that do not include it, and can never
be decrypted by it — which is why ``meshagents enroll`` waits for this marker
(``meshagents.enroll.ready``) before it says the device is enrolled.

The marker carries the pid that wrote it, so a waiter matches it to the process the
service manager runs now and not to an earlier start. It holds no secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

NAME = "ready.json"


def path(data_dir: Path) -> Path:
    return data_dir / NAME


def write(data_dir: Path, **info: Any) -> Path:
    """Atomically write the marker (0600) with ``info`` plus the time; returns its path."""
    target = path(data_dir)
    body = {"ready_at": round(time.time(), 3), **info}
    tmp = target.with_name(f".{NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(body, sort_keys=True) + "\n")
    os.replace(tmp, target)
    return target


def clear(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        path(data_dir).unlink()


def read(marker: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def marker_for_config(config_json: Path) -> Path:
    """Where the agent run with ``config_json`` writes its marker (its ``data_dir``, relative
    paths taken from the file's directory as ``config.load`` does)."""
    try:
        data = json.loads(config_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data_dir = data.get("data_dir") if isinstance(data, dict) else None
    base = config_json.parent
    d = Path(data_dir) if isinstance(data_dir, str) and data_dir else Path(".")
    return path(d if d.is_absolute() else base / d)
