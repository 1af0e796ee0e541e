"""Per-parameter help from a catalog function's docstring (one owner for both the index and ``--help``).

A function documents its parameters in an ``Args:`` block after the summary line, one
line per parameter (continuation lines indented further are joined)::

    \"\"\"Make a WireGuard key pair.

    Args:
        preshared: also make a 32-byte preshared key.
    \"\"\"

A parameter several functions of a group share word for word (the hub's ``interface``,
``config_dir`` and ``netns`` in ``wg_peer_add``/``remove``/``revoke``) is written once, in the
group's ``args.toml`` (``[set] name = "help"``), and the docstring's line points at it::

        interface: see args.toml [hub]

Pure: text in, mapping out (:func:`shared_args` is the one reader of ``args.toml``). The indexer
writes the result into ``meshagents/registry.toml`` and ``fn run ID --help`` shows it; a doctor
check reports parameters left undescribed.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

_HEADER = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_ITEM = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")
#: An ``Args:`` line that takes its text from the group's ``args.toml``.
SHARED = re.compile(r"^see args\.toml \[(?P<set>[A-Za-z0-9_]+)\]$")

SharedArgs = Mapping[str, Mapping[str, str]]


def shared_args(group_dir: Path) -> dict[str, dict[str, str]]:
    """{set: {parameter: help}} from ``<group_dir>/args.toml``; {} when the group has none."""
    try:
        data = tomllib.loads((group_dir / "args.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): {str(n): str(t) for n, t in v.items()} for k, v in data.items() if isinstance(v, dict)}


def param_docs(doc: str | None, shared: SharedArgs | None = None) -> dict[str, str]:
    """{parameter name: one-line description} from the docstring's ``Args:`` block.

    A line ``see args.toml [set]`` takes its text from ``shared[set][name]``; one that names no
    such entry is kept as written (the indexer reports it).
    """
    if not doc:
        return {}
    out: dict[str, str] = {}
    lines = doc.expandtabs().splitlines()
    in_block = False
    item_indent: int | None = None
    current: str | None = None
    for raw in lines:
        stripped = raw.strip()
        if not in_block:
            in_block = bool(_HEADER.match(stripped))
            continue
        if not stripped:
            current = None
            continue
        indent = len(raw) - len(raw.lstrip())
        if indent == 0:  # the block ends at the next unindented line (another section)
            break
        if item_indent is None:
            item_indent = indent
        match = _ITEM.match(stripped)
        if indent == item_indent and match:
            current = match["name"]
            out[current] = match["text"].strip()
        elif current is not None and indent > item_indent:
            out[current] = f"{out[current]} {stripped}".strip()
    for name, text in out.items():
        ref = SHARED.match(text)
        if ref and shared is not None and name in shared.get(ref["set"], {}):
            out[name] = shared[ref["set"]][name]
    return out


def summary_text(doc: str | None) -> str:
    """The docstring without its ``Args:`` block (what ``--help`` shows above the options)."""
    if not doc:
        return ""
    kept: list[str] = []
    skipping = False
    for raw in doc.splitlines():
        if _HEADER.match(raw.strip()):
            skipping = True
            continue
        if skipping and raw.strip() and raw[:1] not in (" ", "\t"):
            skipping = False
        if not skipping:
            kept.append(raw)
    return "\n".join(kept).strip()
