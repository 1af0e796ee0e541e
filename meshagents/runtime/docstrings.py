"""Per-parameter help from a catalog function's docstring (one owner for both the index and ``--help``).

A function documents its parameters in an ``Args:`` block after the summary line, one
line per parameter (continuation lines indented further are joined)::

    \"\"\"Make a WireGuard key pair.

    Args:
        preshared: also make a 32-byte preshared key.
    \"\"\"

Pure: text in, mapping out. The indexer writes the result into ``meshagents/registry.toml`` and
``fn run ID --help`` shows it; a doctor check reports parameters left undescribed.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_ITEM = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")


def param_docs(doc: str | None) -> dict[str, str]:
    """{parameter name: one-line description} from the docstring's ``Args:`` block."""
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
