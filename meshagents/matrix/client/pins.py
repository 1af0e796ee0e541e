"""The trust policy's pins on disk: ``pins.json`` (master keys first seen) and
``identities.json`` (new master keys confirmed by an operator key), 0600 in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.fsutil import read_json, write_private


class FilePins:
    """A ``policy.PinStore`` kept in a client's store directory."""

    def __init__(self, store_dir: Path) -> None:
        self.pins_path = store_dir / "pins.json"
        self.confirmed_path = store_dir / "identities.json"

    def load_pins(self) -> dict[str, str]:
        return {k: str(v) for k, v in (read_json(self.pins_path) or {}).items()}

    def save_pins(self, pins: dict[str, str]) -> None:
        write_private(self.pins_path, dict(pins))

    def load_confirmed(self) -> dict[str, dict[str, Any]]:
        data = read_json(self.confirmed_path) or {}
        return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}

    def save_confirmed(self, confirmed: dict[str, dict[str, Any]]) -> None:
        write_private(self.confirmed_path, dict(confirmed))
