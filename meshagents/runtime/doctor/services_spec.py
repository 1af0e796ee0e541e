"""`services-spec`: an app.md with a `service:` block has it complete."""

from __future__ import annotations

from pathlib import Path

from meshagents.errors import FnError
from meshagents.runtime.appspec import SERVICE_KEYS, app_dirs, load_app, missing_service_keys
from meshagents.runtime.doctor.base import Problem


def check(root: Path) -> list[Problem]:
    problems: list[Problem] = []
    for app_dir in app_dirs(root):
        where = f"meshagents/apps/{app_dir.name}/app.md"
        try:
            spec = load_app(app_dir)
        except FnError as exc:
            problems.append(Problem("services-spec", "error", where, exc.message))
            continue
        if "service" not in spec.front:
            continue
        if spec.service is None:
            problems.append(Problem("services-spec", "error", where, "service: must be a mapping"))
            continue
        missing = missing_service_keys(spec.service)
        if missing:
            problems.append(
                Problem(
                    "services-spec",
                    "error",
                    where,
                    f"service block lacks {', '.join(missing)} (needs {', '.join(SERVICE_KEYS)})",
                )
            )
    return problems
