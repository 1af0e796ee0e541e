"""!help as Element shows it: an HTML table in ``formatted_body`` (one row per
capability, a header row, cells escaped) and a plain-text fallback with the same rows."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from meshagents.apps.agents_and_robots.help import render_help

pytestmark = pytest.mark.unit


class _Tables(HTMLParser):
    """Rows of every <table>, each a list of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    parser.close()
    return parser.tables


VIEW: dict[str, dict[str, Any]] = {
    "shell.exec.ls": {"executables": ["/usr/bin/ls"], "timeout_s": 30},
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
    "x.<b>&": {"requires_approval": False},
}


def test_device_help_is_one_row_per_capability() -> None:
    out = render_help("home-wsl", VIEW)
    (table,) = tables(out.html)
    assert table[0] == ["capability", "command", "approval"]
    rows = {r[0]: r for r in table[1:]}
    assert set(rows) == set(VIEW)
    assert rows["fs.write"][2] == "needs approval" and rows["shell.exec.ls"][2] == "runs at once"
    assert "<b>" not in out.html and "x.&lt;b&gt;&amp;" in out.html  # manifest text is escaped
    # the plain fallback carries the same rows for clients without HTML
    for cap in VIEW:
        assert any(line.strip().startswith(f"{cap}:") for line in out.text.splitlines())


def test_approvals_help_is_a_table_of_commands() -> None:
    out = render_help("", {}, room="approvals")
    (table,) = tables(out.html)
    assert table[0] == ["command", "what it does"]
    assert {r[0] for r in table[1:]} >= {"!approve <id>", "!deny <id>", "!pending"}
