"""`./fn operator ...` without a running demo, or with a bad connection file: clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from meshagents.runtime.cli import cli


def test_recovery_key_and_identity_need_a_connection(tmp_path: Path) -> None:
    none = str(tmp_path / "none.json")
    for argv in (["operator", "recovery-key", "status", "--connection", none],
                 ["operator", "trust-matrix-identity", "--yes", "--connection", none]):  # fmt: skip
        res = CliRunner().invoke(cli, argv)
        assert res.exit_code == 1 and "demo_not_running" in res.output, res.output


def test_connection_without_the_login(tmp_path: Path) -> None:
    conn = tmp_path / "c.json"
    conn.write_text(json.dumps({"homeserver": "http://127.0.0.1:9"}))
    res = CliRunner().invoke(cli, ["operator", "recovery-key", "create", "--connection", str(conn)])
    assert res.exit_code == 1 and "bad_connection_file" in res.output, res.output
