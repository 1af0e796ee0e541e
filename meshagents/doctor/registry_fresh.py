"""`registry`: registry.toml matches the function modules and the catalog is sound."""

from __future__ import annotations

from pathlib import Path

from meshagents.doctor.base import Problem
from meshagents.indexer import build_index


def check(root: Path) -> list[Problem]:
    result, text = build_index(root)
    problems = [Problem("registry", p.level, p.where, p.message) for p in result.problems]
    path = root / "registry.toml"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != text:
        problems.append(Problem("registry", "error", "registry.toml", "stale: run ./fn index"))
    return problems
