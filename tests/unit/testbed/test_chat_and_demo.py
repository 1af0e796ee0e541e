"""``./fn chat`` line parsing, reply matching and the demo's banner (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.testbed.rig.chat import load_connection, parse_line, same_id, target_from_connection
from meshagents.testbed.rig.demo import banner, reply_ok, timings_line
from meshagents.testbed.rig.operator import in_reply_to

pytestmark = pytest.mark.unit

CONN = {
    "homeserver": "http://127.0.0.1:4567", "server_name": "hub.mesh", "operator_user": "@operator:hub.mesh",
    "operator_password": "s3cret", "cross_signing_path": "/w/operator/cross_signing.json",
    "bot_user": "@bot:hub.mesh", "dashboard": "http://127.0.0.1:1", "hub_api": "http://127.0.0.1:2",
    "bot_api": "http://127.0.0.1:3", "api_token": "tok", "store_root": "/w/operator/stores",
    "rooms": {"home-wsl": "#dev-home-wsl:hub.mesh", "approvals": "#operator-approvals:hub.mesh"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("!exec ls /tmp\n", ("send", "!exec ls /tmp")),
        ("   \n", ("empty", "")),
        ("/approve K309X1", ("approve", "K309X1")),
        ("/DENY  k309x1 ", ("deny", "k309x1")),
        ("/approve", ("unknown", "/approve")),
        ("/pending", ("pending", "")),
        ("/quit", ("quit", "")),
        ("/exit", ("quit", "")),
        ("/what", ("unknown", "/what")),
        ("hello there", ("send", "hello there")),
    ],
)
def test_parse_line(line: str, expected: tuple[str, str]) -> None:
    assert parse_line(line) == expected


def test_same_id_reads_like_the_bot() -> None:
    assert same_id("K309X1", "k3o9xi")
    assert same_id("L00000", "100000")
    assert not same_id("K309X1", "K309X2")


def test_in_reply_to() -> None:
    assert in_reply_to({"m.relates_to": {"m.in_reply_to": {"event_id": "$a"}}}) == "$a"
    assert in_reply_to({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$b"}}) is None
    assert in_reply_to({}) is None
    assert in_reply_to({"m.relates_to": "x"}) is None


def test_reply_ok() -> None:
    assert reply_ok("shell.exec.ls [req-1]: ok\n```\nx\n```")
    assert reply_ok("shell.exec.ls [req-1]: ok (exit 0)")
    assert not reply_ok("shell.exec.ls [req-1]: rejected_args — no")
    assert not reply_ok("capability rejected: shell.exec.rm not in manifest")


def test_banner_has_everything_the_operator_needs() -> None:
    text = banner(CONN, Path("/w"))
    for needle in (
        "http://127.0.0.1:4567",
        "@operator:hub.mesh",
        "s3cret",
        "#dev-home-wsl:hub.mesh",
        "#operator-approvals:hub.mesh",
        "http://127.0.0.1:1",
        "./fn chat home-wsl",
        "Ctrl-C",
    ):
        assert needle in text


def test_connection_file(tmp_path: Path) -> None:
    with pytest.raises(FnError) as err:
        load_connection(tmp_path / "none.json")
    assert err.value.code == "demo_not_running"
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(FnError):
        load_connection(bad)
    target = target_from_connection(CONN, "home-wsl")
    assert target.login.store_dir == Path("/w/operator/stores/chat-home-wsl")
    assert target.bot_user == "@bot:hub.mesh"
    assert "s3cret" not in repr(target.login)
    with pytest.raises(FnError):
        target_from_connection({"homeserver": "x"}, "home-wsl")


def test_timings_line_lists_the_slowest_first() -> None:
    line = timings_line({"a": 1.0, "b": 3.25, "c": 2.0, "d": 0.1, "e": 0.2, "f": 0.3})
    assert line == "b 3.2 s, c 2.0 s, a 1.0 s, f 0.3 s, e 0.2 s"
    assert timings_line({}) == ""


def test_cli_chat_without_a_running_demo(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from meshagents.runtime.cli import cli

    res = CliRunner().invoke(cli, ["chat", "home-wsl", "--connection", str(tmp_path / "none.json")])
    assert res.exit_code == 1
    assert "demo_not_running" in res.output


def test_cli_demo_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from meshagents.runtime.cli import cli

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    res = CliRunner().invoke(cli, ["demo", "--smoke"])
    assert res.exit_code == 1
    assert "needs_root" in res.output
