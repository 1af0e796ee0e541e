"""!help rendering: capability matrix, approval flags, examples, escaping."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents.apps.agents_and_robots.commands import SPECS, Command, parse
from meshagents.apps.agents_and_robots.help import render_help

pytestmark = pytest.mark.unit

VIEW: dict[str, dict[str, Any]] = {
    "shell.exec.ls": {"executables": ["/usr/bin/ls"], "path_prefixes": ["/home"], "timeout_s": 30},
    "shell.exec": {"allowed_executables": ["/usr/bin/df"]},
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
    "docker.container.exec": {
        "executables": ["/bin/ps"],
        "values": {"container": ["web"]},
        "requires_approval": True,
    },
    "docker.container.logs": {"values": {"container": ["web", "db"]}, "limits": {"tail": 1000}},
    "gpio.toggle": {"requires_approval": True},
}


def test_device_help_lists_matrix_flags_examples() -> None:
    out = render_help("home-wsl", VIEW)
    text = out.text
    assert "device home-wsl" in text
    assert (
        "shell.exec.ls: !exec ls [args ...] — runs at once "
        "(programs: /usr/bin/ls; paths under: /home; timeout 30 s)\n      e.g. !exec ls\n" in text
    )
    assert "shell.exec: !exec <program> [args ...] — runs at once (programs: /usr/bin/df)" in text
    assert "e.g. !exec df" in text
    assert "fs.write: !fs.write <path> <content> — needs approval (paths under: /tmp)" in text
    assert "(programs: /bin/ps; container: web)" in text and "e.g. !docker exec web ps" in text
    assert "(container: web, db; tail up to 1000)" in text and "e.g. !docker logs web --tail 50" in text
    assert "gpio.toggle: (no bot command) — needs approval" in text  # the manifest is the truth
    assert "not offered on this device: !ls, !fs.read, !docker ps, !sensors, !camera.snapshot, !info" in text
    bot_line = next(line for line in text.splitlines() if line.startswith("bot commands:"))
    assert bot_line == "bot commands: !help [command], !status, !pending"
    assert "<table>" in out.html and "<strong>needs approval</strong>" in out.html


def test_every_example_in_help_parses() -> None:
    for line in render_help("d", {s.capability: {} for s in SPECS if s.capability}).text.splitlines():
        if "e.g. " in line:
            example = line.split("e.g. ", 1)[1]
            assert isinstance(parse(example), Command), example


def test_html_escapes_manifest_values() -> None:
    view = {"shell.exec": {"allowed_executables": ["<img src=x onerror=alert(1)>"]}, "<b>cap</b>": {}}
    out = render_help("<script>dev</script>", view)
    assert "<script>" not in out.html and "<img" not in out.html and "<b>cap" not in out.html
    assert "&lt;script&gt;dev" in out.html


def test_empty_manifest() -> None:
    out = render_help("bare", {})
    assert "offers no capabilities" in out.text and "offers no capabilities" in out.html


def test_approvals_room_help() -> None:
    out = render_help("", {}, room="approvals")
    for usage in ("!approve <id>", "!deny <id>", "!revoke <device>", "!pending"):
        assert usage in out.text
    assert "👍" in out.text and "✅" in out.text and "<table>" in out.html
    assert "!exec" not in out.text


def test_topic_help() -> None:
    out = render_help("d", VIEW, topic="docker logs")
    assert out.text.startswith("!docker logs <container> [--tail N] [--follow S]")
    assert "capability docker.container.logs: runs at once (container: web, db; tail up to 1000)" in out.text
    assert "also: !docker.logs" in out.text
    assert "not offered on this device" in render_help("d", VIEW, topic="sensors").text
    out = render_help("d", VIEW, topic="exec")
    assert "capability shell.exec: runs at once (programs: /usr/bin/df)" in out.text
    assert (
        "capability shell.exec.ls: runs at once (programs: /usr/bin/ls; paths under: /home; timeout 30 s)"
        in out.text
    )
    assert "needs approval" in render_help("d", VIEW, topic="fs.write").text
    assert render_help("d", VIEW, topic="approve").text.startswith("!approve <id>")
    missing = render_help("d", VIEW, topic="frobnicate")
    assert missing.text == "no command frobnicate; try !help"


def test_topic_in_the_approvals_room_has_no_device_lines() -> None:
    out = render_help("", {}, room="approvals", topic="exec")
    assert out.text.startswith("!exec <program>") and "not offered" not in out.text
