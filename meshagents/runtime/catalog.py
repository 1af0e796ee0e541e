"""The catalog marker. A function module declares its one entry point with::

    @function(id="wg_keygen", group="wg", requires=["root"])
    def wg_keygen(preshared: bool = False) -> dict[str, str]:
        \"\"\"One-line summary.\"\"\"

The decorator only attaches metadata (pluggy style): importing a module changes no
global state. The indexer reads the same metadata from the source with `ast`, so
indexing never imports heavy dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

#: Requirements a function may declare; the CLI and doctor know these words.
KNOWN_REQUIREMENTS = frozenset({"root", "network", "docker", "matrix", "wireguard", "ssh", "keystore"})

META_ATTR = "__fn_meta__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class FunctionMeta:
    id: str
    group: str
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionHead:
    """The head of a function's row in registry.toml: what the indexer writes and the registry
    reads back (``indexer.Entry`` and ``registry.CatalogEntry`` add their own form of the rest)."""

    id: str
    group: str
    module: str
    entry: str
    summary: str
    requires: tuple[str, ...]


def function(*, id: str, group: str, requires: Sequence[str] = ()) -> Callable[[F], F]:
    """Mark ``fn`` as the catalog entry point ``id`` of ``group``."""

    def mark(fn: F) -> F:
        setattr(fn, META_ATTR, FunctionMeta(id=id, group=group, requires=tuple(requires)))
        return fn

    return mark


def meta_of(obj: object) -> FunctionMeta | None:
    meta = getattr(obj, META_ATTR, None)
    return meta if isinstance(meta, FunctionMeta) else None
