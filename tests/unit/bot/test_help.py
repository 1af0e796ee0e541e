"""!help rendering: capability matrix, approval flags, examples, escaping."""

from __future__ import annotations

from typing import Any

import pytest

from apps.agents_and_robots.commands import SPECS, Command, parse
from apps.agents_and_robots.help import render_help

pytestmark = pytest.mark.unit

VIEW: dict[str, dict[str, Any]] = {
    "shell.exec": {
        "allowed_executables": ["/usr/bin/ls", "/usr/bin/df"],
        "requires_approval": False,
        "timeout_s": 30,
    },
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
    "docker.container.exec": {
        "containers": {"web": {"allowed_executables": ["/bin/ps"]}},
        "requires_approval": True,
    },
    "gpio.toggle": {"requires_approval": True},
}


def test_device_help_lists_matrix_flags_examples() -> None:
    out = render_help("home-wsl", VIEW)
    text = out.text
    assert "device home-wsl" in text
    assert (
        "shell.exec: !exec <program> [args ...] — runs at once "
        "(programs: /usr/bin/ls, /usr/bin/df; timeout 30)" in text
    )
    assert "fs.write: !fs.write <path> <content> — needs approval (paths under: /tmp)" in text
    assert "containers: web" in text
    assert "gpio.toggle: (no bot command) — needs approval" in text  # the manifest is the truth
    assert "e.g. !exec ls -la /home/operator" in text
    assert "not offered on this device:" in text and "!sensors" in text and "!camera.snapshot" in text
    assert (
        "!status" in text
        and "!pending" in text
        and "!approve" not in text.split("bot commands:")[1].split("\n")[0]
    )
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
    assert "👍" in out.text and "<ul>" in out.html
    assert "!exec" not in out.text


def test_topic_help() -> None:
    out = render_help("d", VIEW, topic="docker logs")
    assert out.text.startswith("!docker logs <container> [--tail N] [--follow S]")
    assert "not offered on this device" in out.text and "also: !docker.logs" in out.text
    out = render_help("d", VIEW, topic="exec")
    assert "capability shell.exec: runs at once (programs: /usr/bin/ls, /usr/bin/df; timeout 30)" in out.text
    assert "needs approval" in render_help("d", VIEW, topic="fs.write").text
    assert render_help("d", VIEW, topic="approve").text.startswith("!approve <id>")
    missing = render_help("d", VIEW, topic="frobnicate")
    assert missing.text == "no command frobnicate; try !help"
