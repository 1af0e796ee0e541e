"""``!cancel <request id>``: a new request for ``control.cancel``, so the manifest decides
about it exactly as about a new command (refused when absent, approval when marked)."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents.apps.agents_and_robots.commands import Command, ParseError, parse
from meshagents.apps.agents_and_robots.core import (
    BotCore,
    DeviceInfo,
    Dispatch,
    Message,
    PostApprovalRequest,
    Reply,
)

pytestmark = pytest.mark.unit

OP = "@op:hub"


def core_with(view: dict[str, Any]) -> tuple[BotCore, dict[str, DeviceInfo]]:
    core = BotCore(bot_user_id="@bot:hub", approvals_room_id="!appr:hub", new_request_id=lambda: "req-2")
    return core, {"d": DeviceInfo("d", view, frozenset({OP}))}


def msg(body: str) -> Message:
    return Message("!room:hub", "device", "d", OP, "$cmd", body, 1000.0, True)


def test_parse() -> None:
    assert parse("!cancel req-0123456789abcdef") == Command(
        "cancel", "control.cancel", {"request_id": "req-0123456789abcdef"})
    assert parse("!control.cancel r1") == Command("cancel", "control.cancel", {"request_id": "r1"})
    for bad in ("!cancel", "!cancel a b", "!cancel ../x", "!cancel -x"):
        err = parse(bad)
        assert isinstance(err, ParseError) and err.code == "bad_arguments", bad


def test_runs_at_once_when_the_manifest_says_so() -> None:
    core, devices = core_with({"control.cancel": {"texts": {"request_id": 128}}})
    actions = core.on_message(msg("!cancel req-1"), devices)
    (dispatch,) = [a for a in actions if isinstance(a, Dispatch)]
    assert dispatch.capability == "control.cancel" and dispatch.args == {"request_id": "req-1"}


def test_needs_approval_like_a_new_command() -> None:
    core, devices = core_with({"control.cancel": {"texts": {"request_id": 128}, "requires_approval": True}})
    actions = core.on_message(msg("!cancel req-1"), devices)
    assert any(isinstance(a, PostApprovalRequest) for a in actions)
    assert not any(isinstance(a, Dispatch) for a in actions)


def test_refused_without_the_capability() -> None:
    core, devices = core_with({})
    actions = core.on_message(msg("!cancel req-1"), devices)
    assert any(isinstance(a, Reply) and "control.cancel" in a.text for a in actions)
    assert not any(isinstance(a, Dispatch) for a in actions)
