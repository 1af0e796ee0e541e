"""Find which catalog functions a piece of code calls.

Python: ``call("<id>", ...)`` / ``api.call("<id>", ...)`` with a literal id (AST).
Bash pipelines: ``fn run <id>`` (any path to ``fn``), ``fn_run <id>``, ``fn_local <id>``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

CALL_NAMES = frozenset({"call"})
# `./fn run [--host H] <id>` and the pipelines/lib.sh helpers `fn_run <id>` / `fn_local <id>`.
PIPELINE_RE = re.compile(
    r"(?:^|[\s/;&|(])(?:fn\s+run\s+(?:--host\s+\S+\s+)?|fn_run\s+|fn_local\s+)([a-z][a-z0-9_]*)"
)


def python_calls(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if name in CALL_NAMES and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.add(first.value)
    return found


def tree_calls(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in sorted(folder.rglob("*.py")):
        if ".venv" in path.parts:
            continue
        found |= python_calls(path.read_text(encoding="utf-8"))
    return found


def pipeline_calls(text: str) -> set[str]:
    return set(PIPELINE_RE.findall(text))
