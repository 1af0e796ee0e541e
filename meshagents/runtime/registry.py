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
def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FnError("registry_missing", f"{path} is missing; run ./fn index") from exc


def _parse(path: Path, text: str) -> dict[str, CatalogEntry]:
    try:
        data = tomllib.loads(text)
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


@cache
def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    path = path or registry_path()
    return _parse(path, _text(path))


def _section(text: str, function_id: str) -> str | None:
    """The lines of ``[functions.<id>]`` and its ``[[functions.<id>.params]]`` (``./fn index``
    writes each function as one block), or None when the id has no block of its own."""
    head = f"\n[functions.{function_id}]\n"
    start = text.find(head)
    if start < 0 or "." in function_id or "]" in function_id:
        return None
    own = f"[[functions.{function_id}.params]]"
    pos = start + len(head)
    while True:
        nxt = text.find("\n[", pos)
        if nxt < 0:
            return text[start:]
        if not text.startswith(own, nxt + 1):
            return text[start:nxt + 1]
        pos = nxt + 1


@cache
def _one(path: Path, function_id: str) -> CatalogEntry | None:
    block = _section(_text(path), function_id)
    return None if block is None else _parse(path, block).get(function_id)


def lookup(function_id: str) -> CatalogEntry:
    """The catalog row of ``function_id``. Parses only that function's block of the
    registry when it has one: tomllib takes ~180 ms for the whole 75 kB file, paid by
    every process that calls one function (``meshagents enroll`` makes four calls, each
    once; issue 19), against well under a millisecond for one block."""
    if load_catalog.cache_info().currsize == 0:  # the whole catalog not parsed yet
        one = _one(registry_path(), function_id)
        if one is not None:
            return one
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
