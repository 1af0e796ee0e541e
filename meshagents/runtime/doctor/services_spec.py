"""`services-spec`: an app.md with a `service:` block has it complete."""

from __future__ import annotations

from pathlib import Path

from meshagents.runtime.appspec import SERVICE_KEYS, missing_service_keys
from meshagents.runtime.doctor.base import Problem, app_specs


def check(root: Path) -> list[Problem]:
    problems: list[Problem] = []
    for where, _app_dir, spec in app_specs(root, "services-spec", problems):
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
