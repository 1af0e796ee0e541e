"""`registry`: meshagents/registry.toml matches the function modules and the catalog is sound."""

from __future__ import annotations

from pathlib import Path

from meshagents.runtime.doctor.base import Problem
from meshagents.runtime.indexer import build_index


def check(root: Path) -> list[Problem]:
    result, text = build_index(root)
    problems = [Problem("registry", p.level, p.where, p.message) for p in result.problems]
    path = root / "meshagents/registry.toml"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != text:
        problems.append(Problem("registry", "error", "meshagents/registry.toml", "stale: run ./fn index"))
    return problems
