"""The doctor's problem record, and the app specs the app checks walk."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.runtime.appspec import AppSpec, app_dirs, load_app


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


def app_specs(root: Path, check: str, problems: list[Problem]) -> list[tuple[str, Path, AppSpec]]:
    """(where, directory, spec) of each app; an app.md that does not load is an error of ``check``."""
    out: list[tuple[str, Path, AppSpec]] = []
    for app_dir in app_dirs(root):
        where = f"meshagents/apps/{app_dir.name}/app.md"
        try:
            out.append((where, app_dir, load_app(app_dir)))
        except FnError as exc:
            problems.append(Problem(check, "error", where, exc.message))
    return out
