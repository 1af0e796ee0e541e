"""`uses-functions`: each app.md declares `uses_functions:`, matching its code both ways."""

from __future__ import annotations

from pathlib import Path

from meshagents.runtime.doctor.base import Problem, app_specs
from meshagents.runtime.doctor.usage_scan import tree_calls
from meshagents.runtime.indexer import build_index


def check(root: Path) -> list[Problem]:
    problems: list[Problem] = []
    result, _ = build_index(root)
    catalog = {e.id for e in result.entries}
    for where, app_dir, spec in app_specs(root, "uses-functions", problems):
        declared = spec.uses_functions
        if declared is None:
            problems.append(Problem("uses-functions", "error", where, "front matter lacks uses_functions:"))
            continue
        called = tree_calls(app_dir)
        for fid in sorted(called - set(declared)):
            problems.append(
                Problem("uses-functions", "error", where, f"code calls {fid} but does not declare it")
            )
        for fid in sorted(set(declared) - called):
            problems.append(
                Problem("uses-functions", "error", where, f"declares {fid} but the code never calls it")
            )
        for fid in sorted((set(declared) | called) - catalog):
            problems.append(Problem("uses-functions", "error", where, f"{fid} is not in the catalog"))
    return problems
