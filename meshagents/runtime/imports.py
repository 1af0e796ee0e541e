"""Which third-party packages each part of the project imports, read from the source (no import).

Used by tests/unit/test_packaging.py to check that every role's extra (pyproject.toml
``[project.optional-dependencies]``) declares what that role's modules import — an agent
installed with ``meshagents[agent]`` must never hit an ImportError because a device module
imports FastAPI. Imports inside functions count too: they run when the function runs.

    modules(root) -> dict[module_name, Path]
    imports_of(name, path) -> list[Import]         # absolute names, relative imports resolved
    closure(entries, mods, skip_edges) -> set[module_name]
    role_requirements(pyproject, role) -> set[distribution]   # extras naming extras expanded
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROJECT = "meshagents"


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name
    importer: str
    line: int

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    @property
    def third_party(self) -> bool:
        return self.top != PROJECT and self.top not in sys.stdlib_module_names and self.top != "__future__"


def modules(root: Path) -> dict[str, Path]:
    """Every module under ``root/meshagents`` by dotted name."""
    out = {}
    for path in sorted((root / PROJECT).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(a.name, name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            out.append(Import(mod, name, node.lineno))
            # `from meshagents.x import y` may import the module meshagents.x.y
            if mod.startswith(PROJECT):
                out += [Import(f"{mod}.{a.name}", name, node.lineno) for a in node.names]
    return out


def _owning(mod: str, mods: dict[str, Path]) -> list[str]:
    """The project modules an import of ``mod`` loads: it and its packages."""
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in mods]


def closure(
    entries: Iterable[str], mods: dict[str, Path], skip_edges: Iterable[tuple[str, str]] = ()
) -> set[str]:
    """Project modules reachable from ``entries`` (prefixes), following every import except
    the (importer prefix, imported prefix) pairs in ``skip_edges``."""
    skips = list(skip_edges)
    todo = [m for m in mods if any(m == e or m.startswith(e + ".") for e in entries)]
    seen: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imp in imports_of(current, mods[current]):
            if imp.top != PROJECT:
                continue
            if any(_under(current, a) and _under(imp.module, b) for a, b in skips):
                continue
            todo += [m for m in _owning(imp.module, mods) if m not in seen]
    return seen


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _req_name(req: str) -> tuple[str, list[str]]:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", req)
    if m is None:
        raise ValueError(f"unreadable requirement {req!r}")
    extras = [e.strip() for e in (m.group(2) or "").split(",") if e.strip()]
    return canonical(m.group(1)), extras


def role_requirements(pyproject: Path, role: str | None) -> set[str]:
    """Distribution names (canonical) the core plus extra ``role`` declares directly; an
    extra that names the project's own extras (``meshagents[net,matrix]``) brings theirs."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    out = {_req_name(r)[0] for r in project.get("dependencies", [])}
    todo, seen = ([role] if role else []), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in extras:
            raise KeyError(f"no extra {extra!r} in {pyproject}")
        seen.add(extra)
        for req in extras[extra]:
            name, sub = _req_name(req)
            if name == canonical(project["name"]):
                todo += sub
            else:
                out.add(name)
    return out
