"""The doctor's problem record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    check: str
    level: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.level}: {self.where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
