"""Merge the settings provisioning owns into a TOML file that may carry hand edits (pure).

The hub's config, the bot's config and the Matrix settings are written by the
provisioning *and* edited by the operator. A re-run sets only the keys it owns
(``managed``: a value, or ``None`` to drop the key), in place with tomlkit, so other
keys, tables (such as a hand-added ``[matrix]``) and comments stay as they were;
when every managed key already has its value the text comes back unchanged, byte for
byte, and nothing is written.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from meshagents.errors import FnError


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def merge(existing: str | None, managed: dict[str, Any], *, header: str = "") -> tuple[str, list[str]]:
    """(new text, changed key paths). Keys with a dot inside a tuple key are tables:
    ``("matrix", "homeserver_url")`` sets ``[matrix] homeserver_url``."""
    try:
        doc = tomlkit.parse(existing) if existing else tomlkit.document()
    except TOMLKitError as exc:
        raise FnError("config_invalid", f"cannot merge into a file that is not TOML: {exc}") from exc
    if not existing and header:
        for line in header.strip().splitlines():
            doc.add(tomlkit.comment(line.lstrip("# ")))
    changed: list[str] = []
    for key, value in managed.items():
        path = key.split(".") if isinstance(key, str) else list(key)
        table: Any = doc
        for part in path[:-1]:
            if part not in table:
                if value is None:
                    table = None
                    break
                table[part] = tomlkit.table()
            table = table[part]
        if table is None:
            continue
        leaf = path[-1]
        current = _plain(table[leaf]) if leaf in table else None
        if value is None:
            if leaf in table:
                del table[leaf]
                changed.append(".".join(path))
            continue
        if current != value or type(current) is not type(value):
            table[leaf] = value
            changed.append(".".join(path))
    if not changed and existing is not None:
        return existing, []
    return tomlkit.dumps(doc), changed
