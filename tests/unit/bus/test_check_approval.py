"""The approval check the device agent runs on events it fetched itself."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents.bus import APPROVAL_REQUEST_KEY, approval_request_content, check_approval

pytestmark = pytest.mark.unit

OP = "@alice:hub"
BINDING = "req1:" + "ab" * 32


def request(binding: str = BINDING, device: str = "dev-1") -> dict[str, Any]:
    content = approval_request_content(
        approval_id="k3x9qa", request_id="req1", device_id=device, capability="fs.write",
        binding=binding, body="approve?", html=None,
    )  # fmt: skip
    return {"event_id": "$R", "sender": "@bot:hub", "type": "m.room.message", "content": content}


def reaction(key: str = "👍", on: str = "$R", sender: str = OP) -> dict[str, Any]:
    return {
        "event_id": "$A", "sender": sender, "type": "m.reaction",
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": on, "key": key}},
    }  # fmt: skip


def command(text: str, sender: str = OP) -> dict[str, Any]:
    return {
        "event_id": "$A",
        "sender": sender,
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": text},
    }


def check(approval: dict[str, Any], req: dict[str, Any] | None = None, **kw: Any) -> tuple[bool, str]:
    args: dict[str, Any] = {
        "approval": approval, "request": req or request(), "approval_verified": True,
        "binding": BINDING, "device_id": "dev-1", "approvers": [OP], "bot_users": ["@bot:hub"],
    }  # fmt: skip
    args.update(kw)
    v = check_approval(**args)
    return v.ok, v.reason


def test_thumbs_up_from_verified_operator() -> None:
    assert check(reaction())[0]


def test_approve_command() -> None:
    assert check(command("!approve k3x9qa"))[0]
    assert not check(command("!approve other1"))[0]
    assert not check(command("!deny k3x9qa"))[0]


@pytest.mark.parametrize(
    ("approval", "kw", "why"),
    [
        (reaction(sender="@mallory:hub"), {}, "not an approver"),
        (reaction(), {"approval_verified": False}, "not verified"),
        (reaction(sender="@bot:hub"), {"approvers": [OP, "@bot:hub"]}, "bot cannot"),
        (reaction(key="👎"), {}, "neither"),
        (reaction(on="$other"), {}, "another event"),
        (reaction(), {"binding": "req2:" + "cd" * 32}, "another request"),
        (reaction(), {"device_id": "dev-2"}, "another device"),
    ],
)
def test_refusals(approval: dict[str, Any], kw: dict[str, Any], why: str) -> None:
    ok, reason = check(approval, **kw)
    assert not ok and why in reason


def test_request_must_be_an_approval_request() -> None:
    fake = request()
    del fake["content"][APPROVAL_REQUEST_KEY]
    assert not check(reaction(), fake)[0]
