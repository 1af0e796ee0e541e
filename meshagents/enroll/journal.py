"""A small journal of one enrollment in ``<state>/enroll/journal.json`` (0600, atomic writes).

It is written the moment the token is about to be spent and after every step, so a
failure (or a kill) afterwards leaves a record of what was done and with which options:
``meshagents enroll --resume`` reads it and runs only the steps not yet done, and
``meshagents leave`` reads it to undo exactly what enrollment made. The token itself is
kept (it is spent by then, and the state directory is 0700) because the hub's sealed
answer, kept beside it in ``pending.json``, is matched to it on a resume.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meshagents.errors import FnError

VERSION = 1
STEPS = ("submit", "wireguard", "mesh", "agent_config", "service", "ready")


@dataclass
class Journal:
    token: str
    token_id: str
    device_name: str
    options: dict[str, Any]
    done: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, Any] | None = None
    version: int = VERSION

    def pending(self) -> list[str]:
        return [s for s in STEPS if s not in self.done]

    def complete(self) -> bool:
        return not self.pending()


def path(state: Path) -> Path:
    return state / "enroll" / "journal.json"


def load(state: Path) -> Journal | None:
    p = path(state)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FnError("enroll_journal_invalid", f"{p}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise FnError("enroll_journal_invalid", f"{p}: not a version {VERSION} journal")
    try:
        return Journal(**raw)
    except TypeError as exc:
        raise FnError("enroll_journal_invalid", f"{p}: {exc}") from exc


def save(state: Path, journal: Journal) -> None:
    p = path(state)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(journal), fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def remove(state: Path) -> None:
    path(state).unlink(missing_ok=True)
