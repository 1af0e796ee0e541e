"""`layers`: every import under meshagents/ follows the layer table ``meshagents/layers.toml``.

The table names each layer's modules and packages and the layers it may import (see the
table's header and docs/architecture.md). Imports are read from the AST, so an import
inside a function counts too, as *lazy*; a layer's ``lazy`` list allows a layer only that
way. ``from pkg import name`` counts as importing ``pkg.name`` when that is a module.
The table's ``[outside.*]`` sections keep ``bench/`` and ``tests/testbed/`` off the test
areas and their conftests.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.runtime.doctor.base import Problem

NAME = "layers"
TABLE = Path("meshagents") / "layers.toml"


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]
    packages: tuple[str, ...]
    may_import: frozenset[str]
    lazy: frozenset[str]
    separate: bool


@dataclass(frozen=True)
class Import:
    line: int
    target: str
    lazy: bool


def load_table(path: Path) -> dict[str, Layer]:
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        name: Layer(
            name=name,
            modules=tuple(spec.get("modules", ())),
            packages=tuple(spec.get("packages", ())),
            may_import=frozenset(spec.get("may_import", ())),
            lazy=frozenset(spec.get("lazy", ())),
            separate=bool(spec.get("separate", False)),
        )
        for name, spec in data.get("layers", {}).items()
    }


def table_problems(layers: dict[str, Layer], where: str) -> list[Problem]:
    out = []
    for layer in layers.values():
        for other in sorted((layer.may_import | layer.lazy) - layers.keys()):
            out.append(Problem(NAME, "error", where, f"layer {layer.name} names an unknown layer {other!r}"))
    return out


def layer_of(module: str, layers: dict[str, Layer]) -> tuple[Layer, str] | None:
    """The layer of ``module`` and the entry that placed it (the longest match)."""
    best: tuple[Layer, str] | None = None
    for layer in layers.values():
        hits = [m for m in layer.modules if module == m]
        hits += [p for p in layer.packages if module == p or module.startswith(p + ".")]
        for hit in hits:
            if best is None or len(hit) > len(best[1]):
                best = (layer, hit)
    return best


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every import in ``tree``; *lazy* when it sits inside a function (so runs only when called)."""
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function |= {id(n) for n in ast.walk(fn) if n is not fn}
    found: list[Import] = []
    for node in ast.walk(tree):
        lazy = id(node) in in_function
        if isinstance(node, ast.Import):
            found += [Import(node.lineno, a.name, lazy) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append(Import(node.lineno, sub if sub in known else base, lazy))
    return found


def check_tree(root: Path, table: Path) -> list[Problem]:
    """Problems of the tree ``root/meshagents`` against the layer table at ``table``."""
    layers = load_table(table)
    problems = table_problems(layers, str(table))
    files = sorted(p for p in (root / "meshagents").rglob("*.py") if "__pycache__" not in p.parts)
    known = {module_name(root, p) for p in files}
    for path in files:
        rel = str(path.relative_to(root))
        module = module_name(root, path)
        placed = layer_of(module, layers)
        if placed is None:
            problems.append(Problem(NAME, "error", rel, f"{module} is in no layer of {TABLE}"))
            continue
        src, src_entry = placed
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for imp in imports_of(tree, module, path.name == "__init__.py", known):
            if imp.target != "meshagents" and not imp.target.startswith("meshagents."):
                continue
            dst_placed = layer_of(imp.target, layers)
            if dst_placed is None:
                continue  # the target's own file reports it
            dst, dst_entry = dst_placed
            where = f"{rel}:{imp.line}"
            if dst is src:
                if src.separate and _part(module, src_entry) != _part(imp.target, dst_entry):
                    message = f"{src.name} stand alone: {module} imports {imp.target}"
                    problems.append(Problem(NAME, "error", where, message))
                continue
            if dst.name in src.may_import or (imp.lazy and dst.name in src.lazy):
                continue
            how = " at import time (only inside a function)" if dst.name in src.lazy else ""
            problems.append(
                Problem(NAME, "error", where, f"{src.name} may not import {dst.name}{how}: {imp.target}")
            )
    return list(dict.fromkeys(problems))  # two names from one module: one problem


def _part(module: str, entry: str) -> str:
    """The subpackage of ``module`` under ``entry`` (``meshagents.apps.wg_hub.x`` → ``wg_hub``)."""
    rest = module[len(entry) + 1 :]
    return rest.split(".")[0] if rest else ""


def check_outside(root: Path, table: Path) -> list[Problem]:
    """``[outside.*]``: directories beside the package (bench/, tests/testbed/) that may not
    import the modules their ``refuse`` list names, nor any conftest."""
    data: dict[str, Any] = tomllib.loads(table.read_text(encoding="utf-8"))
    problems: list[Problem] = []
    for name, spec in data.get("outside", {}).items():
        refused = tuple(spec.get("refuse", ()))
        for folder in spec.get("paths", ()):
            for path in sorted((root / folder).rglob("*.py")):
                rel = str(path.relative_to(root))
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
                for imp in imports_of(tree, module_name(root, path), path.name == "__init__.py", set()):
                    hit = "conftest" in imp.target.split(".") or any(
                        imp.target == r or imp.target.startswith(r + ".") for r in refused
                    )
                    if hit:
                        message = f"{name} may not import {imp.target} (shared rigs live in tests/testbed)"
                        problems.append(Problem(NAME, "error", f"{rel}:{imp.line}", message))
    return list(dict.fromkeys(problems))


def check(root: Path) -> list[Problem]:
    table = root / TABLE
    if not table.exists():
        return [Problem(NAME, "error", str(TABLE), "the layer table is missing")]
    return check_tree(root, table) + check_outside(root, table)
