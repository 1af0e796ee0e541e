"""The bot's commands against the trust core's own manifest model and decide():
the argument shapes the parser emits are ones decide() accepts, and the pre-check
agrees with decide() on what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshagents.apps.agents_and_robots.commands import Command, parse, precheck, view_from_manifest
from meshagents.trust.manifest import decide
from meshagents.trust.models import Manifest
from meshagents.trust.models import parse as parse_model
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit



def manifest(extra: list[dict[str, Any]] | None = None) -> Manifest:
    data = json.loads((ROOT / "docs" / "examples" / "manifest.json").read_text())
    data["capabilities"] = [*data["capabilities"], *(extra or [])]
    return parse_model(Manifest, data, code="manifest_invalid")


def cmd(text: str) -> Command:
    result = parse(text)
    assert isinstance(result, Command), result
    return result


EXTRA: list[dict[str, Any]] = [
    {"name": "docker.container.list", "limits": {"all": 1}},
    {"name": "docker.container.exec", "executables": ["/bin/ps"], "values": {"container": ["web"]}},
    {"name": "sensors"},
]


@pytest.mark.parametrize(
    "text",
    [
        # the example manifest lists one canonical path per program (/usr/bin/ls; on
        # Debian 12 /bin is a symlink to /usr/bin), so a bare "ls" is unambiguous
        "!exec ls /tmp",
        "!exec /usr/bin/ls -la /tmp",
        "!fs.read /home/operator/shared/notes.txt",
        "!docker logs web --tail 50",
        "!docker ps",
        "!docker ps -a",
        "!docker exec web ps",
        "!sensors",
    ],
)
def test_allowed_commands_pass_decide(text: str) -> None:
    m = manifest(EXTRA)
    command = cmd(text)
    check = precheck(command, view_from_manifest(m))
    assert check.allowed and check.capability is not None, check
    decision = decide(m, check.capability, command.args, resolve=False)
    assert decision.allowed, (text, decision.reason)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("!exec rm -rf /", "rejected_capability"),
        ("!exec /sbin/ls /tmp", "rejected_args"),
        ("!docker logs cache", "rejected_args"),
        ("!docker exec web rm x", "rejected_args"),
        ("!camera.snapshot", "rejected_capability"),
    ],
)
def test_precheck_refusals_agree_with_decide(text: str, code: str) -> None:
    m = manifest(EXTRA)
    command = cmd(text)
    check = precheck(command, view_from_manifest(m))
    assert not check.allowed and check.code == code
    decision = decide(m, check.capability or "", command.args, resolve=False)
    assert not decision.allowed and decision.code == code


def test_refusal_text_from_the_example_manifest() -> None:
    check = precheck(cmd("!exec rm -rf /"), view_from_manifest(manifest()))
    assert check.text == "capability rejected: shell.exec.rm not in manifest"


def test_fs_write_content_passes_decide() -> None:
    m = manifest(
        [{"name": "fs.write", "path_prefixes": ["/tmp"], "texts": {"content": 16}, "requires_approval": True}]
    )
    command = cmd("!fs.write /tmp/note.txt hello")
    assert decide(m, "fs.write", command.args, resolve=False).allowed
    too_long = cmd("!fs.write /tmp/note.txt " + "x" * 17)
    assert not decide(m, "fs.write", too_long.args, resolve=False).allowed


def test_core_with_decide_as_its_check() -> None:
    from meshagents.apps.agents_and_robots.core import BotCore, DeviceInfo, Dispatch, Message, Reply

    m = manifest(EXTRA)

    def check(device: DeviceInfo, capability: str, args: dict[str, Any]) -> str | None:
        decision = decide(m, capability, args, resolve=False)
        return None if decision.allowed else f"{decision.code}: {decision.reason}"

    devices = {"home-wsl": DeviceInfo("home-wsl", view_from_manifest(m), frozenset(m.approvers))}
    core = BotCore(bot_user_id="@bot:hub", approvals_room_id="!a:hub", check=check)
    op = m.approvers[0]

    def say(body: str) -> list[Any]:
        return core.on_message(Message("!r:hub", "device", "home-wsl", op, "$e", body, 0.0, True), devices)

    assert any(isinstance(a, Dispatch) for a in say("!fs.read /home/operator/shared/a.txt"))
    refused = [a for a in say("!fs.read /etc/shadow") if isinstance(a, Reply) and not a.alert]
    assert refused and refused[0].text.startswith("rejected_args:")
