"""Load meshagents/registry.toml and resolve a function id to its callable (importing only it)."""

from __future__ import annotations

import difflib
import importlib
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from meshagents.errors import FnError, UnknownFunction
from meshagents.runtime.catalog import FunctionHead, meta_of
from meshagents.state import project_root


@dataclass(frozen=True)
class CatalogEntry(FunctionHead):
    params: tuple[dict[str, Any], ...]
    returns: str
    source_hash: str

    def to_json(self) -> dict[str, Any]:
        """The row as JSON (``fn show --json``): every field, in order, tuples as lists."""
        return {**asdict(self), "requires": list(self.requires), "params": [dict(p) for p in self.params]}


def registry_path(root: Path | None = None) -> Path:
    return (root or project_root()) / "meshagents/registry.toml"


@cache
def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    path = path or registry_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FnError("registry_missing", f"{path} is missing; run ./fn index") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FnError("registry_invalid", f"{path}: {exc}") from exc
    out: dict[str, CatalogEntry] = {}
    for fid, row in data.get("functions", {}).items():
        out[fid] = CatalogEntry(
            id=fid,
            group=row["group"],
            module=row["module"],
            entry=row["entry"],
            summary=row.get("summary", ""),
            requires=tuple(row.get("requires", ())),
            params=tuple(row.get("params", ())),
            returns=row.get("returns", ""),
            source_hash=row.get("source_hash", ""),
        )
    return out


def lookup(function_id: str) -> CatalogEntry:
    catalog = load_catalog()
    try:
        return catalog[function_id]
    except KeyError:
        near = difflib.get_close_matches(function_id, list(catalog), n=3, cutoff=0.5)
        if not near:
            near = sorted(f for f in catalog if function_id and function_id in f)[:3]
        raise UnknownFunction(function_id, near) from None


def resolve(function_id: str) -> Callable[..., Any]:
    """The entry point of ``function_id``; imports only its module."""
    entry = lookup(function_id)
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "meshagents":
            raise
        # an install with fewer extras than this function needs (an agent's [agent] has no docker)
        top = exc.name.split(".")[0]
        raise FnError(
            "missing_dependency",
            f"{function_id} needs the Python package that provides {top!r}, which is not installed here; "
            f"install the extra that declares it (pyproject.toml: pip install 'meshagents[hub]', "
            f"'meshagents[docker]', ...)",
            module=top,
        ) from exc
    fn = getattr(module, entry.entry, None)
    meta = meta_of(fn)
    if fn is None or meta is None or meta.id != function_id:
        raise FnError(
            "registry_stale", f"{entry.module}.{entry.entry} is not {function_id!r}; run ./fn index"
        )
    return fn  # type: ignore[no-any-return]
