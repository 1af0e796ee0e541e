"""One error base for the whole project, with stable machine codes.

    FnError(code, message, **details)        any failure a user or a test can see
     ├── UsageError         code bad_usage         (a shorthand)
     └── UnknownFunction    code unknown_function  with suggestions

Layers raise ``FnError("token_expired", "...")`` or a subclass of their own; the
code is the contract (scripts and tests match on it), the message is for people.
Errors of libraries underneath are mapped with ``raise FnError(...) from exc``.

Every code is listed once in ``meshagents/errors.toml`` (its exit status and meaning;
rendered into docs/errors.md by ``./fn index``). The CLI exits with the code's status
from that table — 2 for usage errors (``bad_usage``, ``unknown_function``), else 1 — so
``FnError("bad_usage", ...)`` and ``UsageError(...)`` exit alike.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODES_FILE = "meshagents/errors.toml"
_TABLE = Path(__file__).with_name("errors.toml")


@dataclass(frozen=True)
class ErrorCode:
    code: str
    exit: int
    meaning: str
    external: bool = False  # raised by another service and passed through, not raised here


def load_codes(path: Path = _TABLE) -> dict[str, ErrorCode]:
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        code: ErrorCode(code, int(row.get("exit", 1)), str(row["meaning"]), bool(row.get("external", False)))
        for code, row in data.get("codes", {}).items()
    }


@functools.cache
def _exit_statuses() -> dict[str, int]:
    return {c.code: c.exit for c in load_codes().values()}


def exit_status(code: str) -> int:
    """The CLI's exit status for ``code`` (1 for a code the table does not know)."""
    return _exit_statuses().get(code, 1)


class FnError(Exception):
    """A failure with a stable code, a human message and optional JSON details."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        out.update(self.details)
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def exit_code(self) -> int:
        """The exit status the CLI ends with: the code's row in meshagents/errors.toml."""
        return exit_status(self.code)


class UsageError(FnError):
    """The caller used a command or a function wrongly (bad or missing parameter)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__("bad_usage", message, **details)


class UnknownFunction(FnError):
    """No catalog function has this id."""

    def __init__(self, function_id: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            "unknown_function", f"no function {function_id!r} in the catalog{hint}", suggestions=suggestions
        )
