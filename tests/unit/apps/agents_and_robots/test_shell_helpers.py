"""The shell's pure helpers: room aliases, device results, !status text, the dashboard
deny in the core, and the settings file."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents.apps.agents_and_robots.config import BotSettings, parse_settings
from meshagents.apps.agents_and_robots.control import DeviceStatus
from meshagents.apps.agents_and_robots.core import (
    DASHBOARD,
    Dispatch,
    PostApprovalRequest,
    Reaction,
    Reply,
    SetDispatchStatus,
)
from meshagents.apps.agents_and_robots.directory import DeviceRecord
from meshagents.apps.agents_and_robots.shell import (
    device_checkable_vote,
    result_from_content,
    room_kind_of,
    status_text,
)
from meshagents.errors import FnError
from tests.unit.apps.agents_and_robots.test_core import APPROVALS, ROOM, T0, make_core, msg
from tests.unit.apps.agents_and_robots.test_core import DEVICES as CORE_DEVICES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("#dev-home-wsl:hub", ("dev", "home-wsl")),
        ("#cont-web:hub", ("cont", "web")),
        ("#dev-:hub", None),
        ("#dev-home:other", None),
        ("#operator-approvals:hub", None),
        (None, None),
        ("!room:hub", None),
    ],
)
def test_room_kind_of(alias: str | None, expected: tuple[str, str] | None) -> None:
    assert room_kind_of(alias, "hub") == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"request_id": "req-1", "status": "ok", "output": "a\nb"}, ("req-1", "ok", None)),
        ({"request_id": "req-1", "status": "rejected_nonce", "output": "nonce already used"},
         ("req-1", "rejected_nonce", "nonce already used")),
        ({"request_id": "req-1", "status": "error", "output": "x" * 500}, ("req-1", "error", "x" * 200)),
        ({"request_id": 5, "status": "ok"}, None),
        ({"request_id": "", "status": "ok"}, None),
        ({"request_id": "r" * 129, "status": "ok"}, None),
        ({"status": "ok"}, None),
        ({"request_id": "req-1"}, None),
    ],
)
def test_result_from_content(content: dict[str, Any], expected: tuple[str, str, str | None] | None) -> None:
    got = result_from_content(content, "home", T0)
    if expected is None:
        assert got is None
    else:
        assert got is not None and (got.request_id, got.status, got.reason) == expected
        assert got.device == "home" and got.at == T0


def test_status_text() -> None:
    records = {
        "a": DeviceRecord("a", None, handshake_known=True, last_handshake=T0 - 30),
        "b": DeviceRecord("b", None, revoked=True),
        "c": DeviceRecord("c", None),
        "d": DeviceRecord("d", None, handshake_known=True),
    }
    text = status_text(records, {"a": DeviceStatus("ok", T0 - 5)}, None, T0)
    assert text.splitlines() == [
        "a: last handshake 30 s ago; agent ok (5 s ago); no manifest",
        "b: revoked; agent never reported; no manifest",
        "c: mesh state unknown (no hub data); agent never reported; no manifest",
        "d: no WireGuard handshake yet; agent never reported; no manifest",
    ]
    assert status_text(records, {}, "zz", T0) == "zz: unknown device"
    assert status_text({}, {}, None, T0) == "no devices known"


def test_dashboard_deny_is_an_operator_decision() -> None:
    core = make_core()
    actions = core.on_message(msg("!fs.write /tmp/note hi there"), CORE_DEVICES)
    (post,) = [a for a in actions if isinstance(a, PostApprovalRequest)]
    core.posted(post.approval_id, "$request")
    assert core.request_id_of(post.approval_id) == "req-0"
    outcome, acts = core.deny_from_dashboard(post.approval_id, T0 + 10)
    assert outcome == "denied"
    (status,) = [a for a in acts if isinstance(a, SetDispatchStatus)]
    assert (status.status, status.approval_event_id) == ("denied", DASHBOARD)
    replies = [a for a in acts if isinstance(a, Reply)]
    assert {r.room_id for r in replies} == {APPROVALS, ROOM}
    assert any(r.text == f"denied {post.approval_id} by {DASHBOARD}; nothing ran" for r in replies)
    assert not [a for a in acts if isinstance(a, Dispatch)]
    req = core.book.get(post.approval_id)
    assert req is not None and req.decided_by == DASHBOARD
    assert core.deny_from_dashboard(post.approval_id, T0 + 11) == ("decided", [])
    assert core.deny_from_dashboard("ZZZZZZ", T0) == ("not_found", [])
    assert core.request_id_of(post.approval_id) == "req-0"  # kept for the listings


def test_dashboard_deny_after_expiry_expires() -> None:
    core = make_core()
    actions = core.on_message(msg("!fs.write /tmp/note hi there"), CORE_DEVICES)
    (post,) = [a for a in actions if isinstance(a, PostApprovalRequest)]
    outcome, acts = core.deny_from_dashboard(post.approval_id, T0 + 7200)
    assert outcome == "decided"
    assert [a.status for a in acts if isinstance(a, SetDispatchStatus)] == ["expired"]


def test_approved_dispatch_carries_the_request_event() -> None:
    core = make_core()
    actions = core.on_message(msg("!fs.write /tmp/note hi there"), CORE_DEVICES)
    (post,) = [a for a in actions if isinstance(a, PostApprovalRequest)]
    core.posted(post.approval_id, "$request")
    acts = core.on_reaction(Reaction("@op:hub", "👍", "$request", "$thumb", T0 + 1, True), CORE_DEVICES)
    (dispatch,) = [a for a in acts if isinstance(a, Dispatch)]
    assert (dispatch.approval_id, dispatch.approval_request_event) == (post.approval_id, "$request")


def test_settings_defaults_and_errors() -> None:
    assert parse_settings({}) == BotSettings()
    s = parse_settings({"hub_url": "http://127.0.0.1:8000", "control_hosts": ["127.0.0.1", "10.42.0.1"],
                        "control_port": 9000, "poll_s": 1, "stale_after_s": 3600})
    assert (s.hub_url, s.control_hosts, s.control_port, s.poll_s, s.stale_after_s) == (
        "http://127.0.0.1:8000", ("127.0.0.1", "10.42.0.1"), 9000, 1.0, 3600.0)
    for bad in ({"poll_s": 5}, {"poll_s": True}, {"control_port": 70000}, {"control_hosts": "127.0.0.1"},
                {"nope": 1}, {"hub_url": 3}, {"approval_ttl_s": 0}):
        with pytest.raises(FnError) as err:
            parse_settings(bad)
        assert err.value.code == "bot_config_invalid"


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ("!approve K309X1", True),
        ("  !approve K309X1  ", True),
        ("!approve k309x1", False),          # the device compares the text exactly
        ("!approve K3O9X1", False),          # a look-alike letter
        ("> <@op:hub> approval needed\n\n!approve K309X1", False),  # a reply fallback
        ("!APPROVE K309X1", False),
        ("!deny k309x1", True),              # denials need no device check
        ("!approve", True),                  # a usage error: the core answers it
        ("hello", True),
    ],
)
def test_device_checkable_vote_text(body: str, ok: bool) -> None:
    problem = device_checkable_vote(body)
    assert (problem is None) is ok
    if problem:
        assert "!approve K309X1" in problem


@pytest.mark.parametrize(
    ("key", "ok"),
    [("👍", True), ("👍\ufe0f", True), ("👍🏽", True), ("👎🏽", True), ("🎉", True)],
)
def test_device_checkable_vote_reaction(key: str, ok: bool) -> None:
    assert (device_checkable_vote(reaction_key=key) is None) is ok


def test_forget_keeps_memory_bounded() -> None:
    core = make_core()
    actions = core.on_message(msg("!fs.write /tmp/note hi there"), CORE_DEVICES)
    (post,) = [a for a in actions if isinstance(a, PostApprovalRequest)]
    assert core.forget(T0 + 10) == 0  # pending: kept
    core.deny_from_dashboard(post.approval_id, T0 + 10)
    assert core.forget(T0 + 5) == 0 and core.request_id_of(post.approval_id) == "req-0"
    assert core.forget(T0 + 11) == 1
    assert core.request_id_of(post.approval_id) is None and core.book.get(post.approval_id) is None
