"""One error base for the whole project, with stable machine codes.

    FnError(code, message, **details)        any failure a user or a test can see
     ├── UsageError         code bad_usage         exit 2 from the CLI
     ├── UnknownFunction    code unknown_function  exit 2, with suggestions
     └── (everything else)                          exit 1

Layers raise ``FnError("token_expired", "...")`` or a subclass of their own; the
code is the contract (scripts and tests match on it), the message is for people.
Errors of libraries underneath are mapped with ``raise FnError(...) from exc``.
"""

from __future__ import annotations

from typing import Any


class FnError(Exception):
    """A failure with a stable code, a human message and optional JSON details."""

    exit_code = 1

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


class UsageError(FnError):
    """The caller used a command or a function wrongly (bad or missing parameter)."""

    exit_code = 2

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__("bad_usage", message, **details)


class UnknownFunction(FnError):
    """No catalog function has this id."""

    exit_code = 2

    def __init__(self, function_id: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            "unknown_function", f"no function {function_id!r} in the catalog{hint}", suggestions=suggestions
        )
