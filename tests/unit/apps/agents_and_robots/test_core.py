"""The bot's per-event decisions: who may command, refusals, approvals, dispatches."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from meshagents.apps.agents_and_robots.approvals import ApprovalBook
from meshagents.apps.agents_and_robots.confirm import RevokeConfirmations
from meshagents.apps.agents_and_robots.core import (
    Action,
    BotCore,
    DeviceInfo,
    Dispatch,
    Message,
    PostApprovalRequest,
    Reaction,
    RecordDispatch,
    Reply,
    Revoke,
    SetDispatchStatus,
    StatusQuery,
)
from meshagents.apps.agents_and_robots.dispatches import DispatchStore, args_digest

pytestmark = pytest.mark.unit

BOT = "@bot:hub"
OP = "@op:hub"
EVE = "@eve:hub"
APPROVALS = "!approvals:hub"
ROOM = "!dev-home:hub"
T0 = 1_800_000_000.0

VIEW: dict[str, dict[str, Any]] = {
    "shell.exec.ls": {"executables": ["/usr/bin/ls"], "path_prefixes": ["/home"]},
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
}
DEVICES = {
    "home-wsl": DeviceInfo("home-wsl", VIEW, frozenset({OP})),
    "old-pi": DeviceInfo("old-pi", {}, frozenset({OP}), revoked=True),
}


def make_core() -> BotCore:
    ids = itertools.count()
    book_ids = itertools.count()
    return BotCore(
        bot_user_id=BOT,
        approvals_room_id=APPROVALS,
        approvals=ApprovalBook(bot_user_id=BOT, new_id=lambda taken: f"A{next(book_ids):05d}"),
        confirmations=RevokeConfirmations(new_code=lambda taken: "C0DE42"),
        new_request_id=lambda: f"req-{next(ids)}",
    )


def msg(
    body: str,
    *,
    sender: str = OP,
    room: str = ROOM,
    device: str | None = "home-wsl",
    verified: bool = True,
    ev: str = "$cmd",
    at: float = T0,
    trust: str = "ok",
) -> Message:
    kind = "approvals" if room == APPROVALS else "device"
    return Message(room, kind, None if kind == "approvals" else device, sender, ev, body, at, verified,  # type: ignore[arg-type]
                   trust=trust)


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def test_chat_and_own_messages_are_ignored() -> None:
    core = make_core()
    assert core.on_message(msg("hello, how are you?"), DEVICES) == []
    assert core.on_message(msg("!exec ls", sender=BOT), DEVICES) == []


def test_non_operator_gets_refusal_and_alert() -> None:
    core = make_core()
    actions = core.on_message(msg("!exec ls /home", sender=EVE), DEVICES)
    reply, alert = actions
    assert isinstance(reply, Reply) and reply.room_id == ROOM and reply.reply_to == "$cmd"
    assert reply.text == f"refused: {EVE} is not an operator of home-wsl"
    assert isinstance(alert, Reply) and alert.alert and alert.room_id == APPROVALS and EVE in alert.text
    # even garbage or !help from a stranger gets the refusal, not the grammar
    assert "refused" in core.on_message(msg("!exce", sender=EVE), DEVICES)[0].text  # type: ignore[union-attr]


def test_unverified_device_is_refused() -> None:
    core = make_core()
    actions = core.on_message(msg("!exec ls", verified=False), DEVICES)
    assert "not verified" in actions[0].text and actions[1].alert  # type: ignore[union-attr]


def test_refusals_are_readable_by_a_session_without_room_keys() -> None:
    """Issue 17: plain notices (the session holds no room key of ours), saying what to do."""
    core = make_core()
    reply, alert = core.on_message(
        msg("!exec ls", verified=False, trust="device_not_cross_signed"), DEVICES
    )
    assert isinstance(reply, Reply) and reply.unencrypted and reply.reply_to == "$cmd"
    assert "verify this session with your recovery key" in reply.text.lower()
    assert isinstance(alert, Reply) and alert.alert and not alert.unencrypted
    reply, _ = core.on_message(msg("!exec ls", verified=False, trust="master_key_changed"), DEVICES)
    assert isinstance(reply, Reply) and reply.unencrypted and "trust-matrix-identity" in reply.text
    stranger, _ = core.on_message(msg("!exec ls", sender=EVE), DEVICES)
    assert isinstance(stranger, Reply) and stranger.unencrypted


def test_operator_of_another_device_only() -> None:
    devices = {**DEVICES, "lab": DeviceInfo("lab", VIEW, frozenset({"@other:hub"}))}
    core = make_core()
    actions = core.on_message(msg("!exec ls", device="lab"), devices)
    assert actions[0].text == f"refused: {OP} is not an operator of lab"  # type: ignore[union-attr]


def test_parse_errors_and_wrong_room_answer_the_operator() -> None:
    core = make_core()
    (reply,) = core.on_message(msg("!exce ls"), DEVICES)
    assert isinstance(reply, Reply) and "did you mean !exec?" in reply.text
    (reply,) = core.on_message(msg("!approve A00000"), DEVICES)
    assert "#operator-approvals" in reply.text  # type: ignore[union-attr]
    (reply,) = core.on_message(msg("!exec ls", room=APPROVALS), DEVICES)
    assert "device room" in reply.text  # type: ignore[union-attr]


def test_direct_dispatch() -> None:
    core = make_core()
    actions = core.on_message(msg("!exec ls /home"), DEVICES)
    record, dispatch = actions
    assert isinstance(record, RecordDispatch)
    assert (record.request_id, record.capability, record.status, record.device) == (
        "req-0",
        "shell.exec.ls",
        "received",
        "home-wsl",
    )
    assert dispatch == Dispatch(
        "req-0", "home-wsl", ROOM, "shell.exec.ls", {"argv": ["ls", "/home"]}, None, "$cmd"
    )


def test_precheck_refusal_answers_at_once_alerts_and_records() -> None:
    core = make_core()
    actions = core.on_message(msg("!exec rm -rf /"), DEVICES)
    record, reply, alert = actions
    assert isinstance(record, RecordDispatch) and record.status == "refused"
    assert record.reason == "capability rejected: shell.exec.rm not in manifest"
    assert isinstance(reply, Reply) and reply.text == "capability rejected: shell.exec.rm not in manifest"
    assert reply.room_id == ROOM and reply.reply_to == "$cmd"
    assert isinstance(alert, Reply) and alert.alert and "shell.exec.rm" in alert.text
    (_, reply, _) = core.on_message(msg("!sensors"), DEVICES)
    assert reply.text == "capability not in manifest: sensors"  # type: ignore[union-attr]


def test_revoked_device_answers_peer_revoked() -> None:
    core = make_core()
    actions = core.on_message(msg("!exec ls", room="!dev-pi:hub", device="old-pi"), DEVICES)
    assert of(actions, SetDispatchStatus)[0].status == "peer_revoked"
    assert of(actions, Reply)[0].text.startswith("peer_revoked: old-pi is revoked")
    assert not of(actions, Dispatch)


def test_unknown_device_room() -> None:
    core = make_core()
    reply, alert = core.on_message(msg("!help", device="ghost"), DEVICES)
    assert "not an operator of ghost" in reply.text  # type: ignore[union-attr]
    assert alert.alert  # type: ignore[union-attr]


def approval_flow(core: BotCore) -> str:
    actions = core.on_message(msg("!fs.write /tmp/note hi there"), DEVICES)
    record, status, post, waiting = actions
    assert isinstance(record, RecordDispatch) and record.capability == "fs.write"
    assert status == SetDispatchStatus("req-0", "pending_approval", T0, approval_id="A00000")
    assert isinstance(post, PostApprovalRequest) and post.approval_id == "A00000"
    args = {"path": "/tmp/note", "content": "hi there"}
    assert post.binding is not None and post.args == args
    assert post.binding.request_id == "req-0" and post.binding.args_digest == args_digest(args)
    assert post.binding.capability == "fs.write" and post.binding.deadline == int(T0 + 3600)
    binding = post.binding.digest
    assert f"binding: {binding}" in post.text and "fs.write" in post.text
    assert post.data == {
        "approval_id": "A00000",
        "request_id": "req-0",
        "binding": binding,
        "device": "home-wsl",
        "capability": "fs.write",
        "expires_at": int(T0 + 3600),
    }
    assert (
        isinstance(waiting, Reply)
        and waiting.room_id == ROOM
        and waiting.text.startswith("waiting for approval A00000")
    )
    core.posted("A00000", "$request")
    return "A00000"


def test_approval_by_reaction_dispatches_with_the_approval_event() -> None:
    core = make_core()
    approval_flow(core)
    # the bot's own reaction and a stranger's do nothing useful
    assert core.on_reaction(Reaction(BOT, "👍", "$request", "$r0", T0 + 1, True), DEVICES) == []
    stranger = core.on_reaction(Reaction(EVE, "👍", "$request", "$r1", T0 + 1, True), DEVICES)
    assert [a.alert for a in stranger] == [True]  # type: ignore[union-attr]
    assert core.on_reaction(Reaction(OP, "🎉", "$request", "$r2", T0 + 1, True), DEVICES) == []
    actions = core.on_reaction(Reaction(OP, "👍", "$request", "$thumb", T0 + 5, True), DEVICES)
    status = of(actions, SetDispatchStatus)[0]
    assert (status.request_id, status.status, status.approval_event_id) == ("req-0", "approved", "$thumb")
    (dispatch,) = of(actions, Dispatch)
    assert dispatch == Dispatch(
        "req-0", "home-wsl", ROOM, "fs.write", {"path": "/tmp/note", "content": "hi there"}, "$thumb", "$cmd"
    )
    rooms = [r.room_id for r in of(actions, Reply)]
    assert rooms == [APPROVALS, ROOM]


def test_approve_and_deny_commands() -> None:
    core = make_core()
    approval_flow(core)
    actions = core.on_message(msg("!deny a00000", room=APPROVALS, ev="$no"), DEVICES)
    assert of(actions, SetDispatchStatus)[0].status == "denied" and not of(actions, Dispatch)
    (again,) = core.on_message(msg("!approve A00000", room=APPROVALS, ev="$yes"), DEVICES)
    assert "already denied" in again.text  # type: ignore[union-attr]


def test_non_operator_cannot_approve_by_command() -> None:
    core = make_core()
    approval_flow(core)
    actions = core.on_message(msg("!approve A00000", room=APPROVALS, sender=EVE), DEVICES)
    assert "refused" in actions[0].text and not of(actions, Dispatch)  # type: ignore[union-attr]


def test_expiry_by_tick() -> None:
    core = make_core()
    approval_flow(core)
    assert core.tick(T0 + 3599) == []
    actions = core.tick(T0 + 3600)
    status = of(actions, SetDispatchStatus)[0]
    assert (status.status, status.reason) == ("expired", "no decision before expiry")
    assert [r.room_id for r in of(actions, Reply)] == [APPROVALS, ROOM]
    assert core.tick(T0 + 7200) == []


def test_pending_help_status() -> None:
    core = make_core()
    approval_flow(core)
    (reply,) = core.on_message(msg("!pending", room=APPROVALS), DEVICES)
    assert "A00000" in reply.text  # type: ignore[union-attr]
    (reply,) = core.on_message(msg("!help"), DEVICES)
    assert "device home-wsl" in reply.text and "shell.exec.ls" in reply.text  # type: ignore[union-attr]
    (reply,) = core.on_message(msg("!help", room=APPROVALS), DEVICES)
    assert "!approve <id>" in reply.text  # type: ignore[union-attr]
    assert core.on_message(msg("!status"), DEVICES) == [StatusQuery(ROOM, "home-wsl", "$cmd")]


def test_revoke_two_steps() -> None:
    core = make_core()
    (ask,) = core.on_message(msg("!revoke home-wsl", room=APPROVALS), DEVICES)
    assert "!revoke home-wsl --confirm C0DE42" in ask.text  # type: ignore[union-attr]
    actions = core.on_message(
        msg("!revoke home-wsl --confirm c0de42", room=APPROVALS, ev="$ok", at=T0 + 5), DEVICES
    )
    assert actions[-1] == Revoke("home-wsl", OP, "$ok")
    (reply,) = core.on_message(msg("!revoke nothere", room=APPROVALS), DEVICES)
    assert reply.text == "no device nothere"  # type: ignore[union-attr]


def test_actions_drive_the_store(state_dir: Any) -> None:
    """The record/status actions of a whole approval flow are moves the store accepts."""
    core = make_core()
    actions: list[Action] = core.on_message(msg("!fs.write /tmp/note hi there"), DEVICES)
    core.posted("A00000", "$request")
    actions += core.on_reaction(Reaction(OP, "👍", "$request", "$thumb", T0 + 5, True), DEVICES)
    actions += core.on_message(msg("!exec rm x", ev="$c2"), DEVICES)
    with DispatchStore.open() as store:
        for action in actions:
            if isinstance(action, RecordDispatch):
                store.record(
                    request_id=action.request_id,
                    room_id=action.room_id,
                    sender=action.sender,
                    command=action.command,
                    capability=action.capability,
                    args=action.args,
                    now=action.now,
                    device=action.device,
                    command_event_id=action.command_event_id,
                    status=action.status,
                    reason=action.reason,
                )
            elif isinstance(action, SetDispatchStatus):
                store.set_status(
                    action.request_id,
                    action.status,
                    now=action.now,
                    reason=action.reason,
                    approval_id=action.approval_id,
                    approval_event_id=action.approval_event_id,
                )
            elif isinstance(action, Dispatch):
                store.set_status(action.request_id, "sent", now=T0 + 6)
        row = store.get("req-0")
        assert row is not None and (row.status, row.approval_id, row.approval_event_id) == (
            "sent",
            "A00000",
            "$thumb",
        )
        refused = store.get("req-1")
        assert refused is not None and refused.status == "refused"


def test_device_results_and_replay_alert() -> None:
    from meshagents.apps.agents_and_robots.core import DeviceResult

    core = make_core()
    assert core.on_device_result(DeviceResult("req-0", "home-wsl", "ok", T0)) == [
        SetDispatchStatus("req-0", "ok", T0)
    ]
    status, alert = core.on_device_result(DeviceResult("req-1", "home-wsl", "rejected_nonce", T0, "seen"))
    assert status == SetDispatchStatus("req-1", "rejected_nonce", T0, reason="seen")
    assert isinstance(alert, Reply) and alert.alert and "replay" in alert.text
    (odd,) = core.on_device_result(DeviceResult("req-2", "home-wsl", "approved", T0))
    assert (
        isinstance(odd, SetDispatchStatus)
        and odd.status == "error"
        and "unknown status" in (odd.reason or "")
    )


def test_stale_alerts_through_the_core() -> None:
    core = BotCore(bot_user_id=BOT, approvals_room_id=APPROVALS, stale_after_s=600)
    (alert,) = core.check_stale({"home-wsl": T0 - 601}, T0)
    assert isinstance(alert, Reply) and alert.alert and alert.room_id == APPROVALS and "stale" in alert.text
    assert core.check_stale({"home-wsl": T0 - 601}, T0 + 1) == []


def test_check_hook_refuses_before_any_approval() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def check(device: DeviceInfo, capability: str, args: dict[str, Any]) -> str | None:
        seen.append((device.name, capability, args))
        return (
            "rejected_args: /etc is outside the allowed paths"
            if args.get("path", "").startswith("/etc")
            else None
        )

    core = BotCore(bot_user_id=BOT, approvals_room_id=APPROVALS, check=check)
    actions = core.on_message(msg("!fs.write /etc/passwd x"), DEVICES)
    record, reply, alert = actions
    assert isinstance(record, RecordDispatch) and record.status == "refused"
    assert reply.text == "rejected_args: /etc is outside the allowed paths"  # type: ignore[union-attr]
    assert alert.alert and not of(actions, PostApprovalRequest)  # type: ignore[union-attr]
    assert seen == [("home-wsl", "fs.write", {"path": "/etc/passwd", "content": "x"})]
    # allowed by the hook: the approval flow goes on
    assert of(core.on_message(msg("!fs.write /tmp/x y"), DEVICES), PostApprovalRequest)
    # the pre-check refuses first; the hook is not asked
    core.on_message(msg("!exec rm x"), DEVICES)
    assert len(seen) == 2


def test_command_sent_as_a_reply_with_fallback() -> None:
    core = make_core()
    approval_flow(core)
    body = "> <@bot:hub> approval needed: request A00000\n\n!approve A00000"
    actions = core.on_message(msg(body, room=APPROVALS, ev="$reply"), DEVICES)
    assert of(actions, Dispatch) and of(actions, Dispatch)[0].approval_event_id == "$reply"
