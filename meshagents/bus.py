"""The Matrix bus contract between the bot and the device agents (pure, no I/O).

Event types (custom, namespaced, hidden in Element's timeline)::

    org.meshagents.envelope   bot -> device room
        {"envelope": <signed Envelope dict>,
         "reply_to": "$operator_command_event" | null,   # the agent's notice replies to it
         "approval_request_event": "$R" | null}           # hint: the request the approval answers
    org.meshagents.result     device agent -> its room
        {"request_id", "device_id", "status", "exit_code": int | null, "output": str,
         "truncated": bool, "audit_seq": int | null, "duration_ms": int}
    org.meshagents.status     device agent -> its room (on start, on ok <-> degraded)
        {"device_id", "state": "ok" | "degraded", "ts": int, "detail": str}

Replies in Element's conventions (docs/device_agent.md): an output too long or too binary
for the notice follows it as an encrypted ``m.file`` (the result event then carries
``"attachment": {"name", "size", "total", "sha256"}``); a request running over a second
gets a live ``m.notice`` marked with :data:`LIVE_KEY`, edited in place (``m.replace``)
at most once a second, its last edit the answer. ``fs.write`` may name an uploaded file
instead of ``content``: ``"file"`` is ``meshagents.matrix.attachments.FileArg``.

Approvals (ARCHITECTURE.md): the bot posts the request R in ``#operator-approvals`` as
an ``m.text`` whose content carries :data:`APPROVAL_REQUEST_KEY`::

    {"approval_id": "k3x9qa", "request_id": ..., "device_id": ..., "capability": ...,
     "binding": approval_binding(envelope)}   # "<request_id>:<sha256 of canonical args>"

An operator approves with a 👍 reaction on R, or with ``!approve <approval_id>``. The
envelope's signed ``approval`` field is the event id of that approving event A. The
device agent fetches A and R from the approvals room itself and calls
:func:`check_approval`: a stolen controller key can name an event, but cannot make an
operator's verified device send it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

ENVELOPE_EVENT = "org.meshagents.envelope"
RESULT_EVENT = "org.meshagents.result"
STATUS_EVENT = "org.meshagents.status"
APPROVAL_REQUEST_KEY = "org.meshagents.approval_request"

APPROVE_REACTIONS = frozenset({"👍", "👍️", "+1", "✅"})
#: Marks a device's live message and its m.replace edits: {"request_id", "state": "running" | "final"}
#: (apps/device_agent/live.py); a client waiting for the answer skips "running" and takes "final".
LIVE_KEY = "org.meshagents.live"
APPROVE_COMMAND = "!approve"


@dataclass(frozen=True)
class ApprovalVerdict:
    ok: bool
    reason: str


def approval_request_content(
    *,
    approval_id: str,
    request_id: str,
    device_id: str,
    capability: str,
    binding: str,
    body: str,
    html: str | None,
) -> dict[str, Any]:
    """The ``m.text`` content of an approval request R."""
    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": body,
        APPROVAL_REQUEST_KEY: {
            "approval_id": approval_id,
            "request_id": request_id,
            "device_id": device_id,
            "capability": capability,
            "binding": binding,
        },
    }
    if html is not None:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = html
    return content


def _approving_target(approval: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(event id R the approval reacts to, approval_id named by a command), from event A."""
    content = approval.get("content") or {}
    if approval.get("type") == "m.reaction":
        rel = content.get("m.relates_to") or {}
        if rel.get("rel_type") == "m.annotation" and rel.get("key") in APPROVE_REACTIONS:
            return str(rel.get("event_id") or ""), None
        return None, None
    if approval.get("type") == "m.room.message":
        words = str(content.get("body", "")).strip().split()
        if len(words) == 2 and words[0] == APPROVE_COMMAND:
            return None, words[1]
    return None, None


def check_approval(
    *,
    approval: Mapping[str, Any],
    request: Mapping[str, Any],
    approval_verified: bool,
    binding: str,
    device_id: str,
    approvers: Collection[str],
    bot_users: Collection[str] = (),
) -> ApprovalVerdict:
    """Does event ``approval`` (A, decrypted) approve the request ``binding`` posted as ``request`` (R)?

    ``approval_verified`` is the Matrix layer's verdict on A's sending device (decrypted
    from a device cross-signed by its owner, the owner an allowed operator).
    """
    sender = str(approval.get("sender", ""))
    if sender in bot_users:
        return ApprovalVerdict(False, "a bot cannot approve")
    if sender not in approvers:
        return ApprovalVerdict(False, f"{sender} is not an approver in the manifest")
    if not approval_verified:
        return ApprovalVerdict(False, f"{sender}'s device is not verified")
    target_event, approval_id = _approving_target(approval)
    if target_event is None and approval_id is None:
        return ApprovalVerdict(False, "the event is neither a 👍 reaction nor !approve <id>")
    info = (request.get("content") or {}).get(APPROVAL_REQUEST_KEY)
    if not isinstance(info, Mapping):
        return ApprovalVerdict(False, "the named request is not an approval request")
    if target_event is not None and target_event != request.get("event_id"):
        return ApprovalVerdict(False, "the reaction is on another event")
    if approval_id is not None and approval_id != info.get("approval_id"):
        return ApprovalVerdict(False, "the command approves another request")
    if info.get("binding") != binding:
        return ApprovalVerdict(False, "the approval was for another request or other arguments")
    if info.get("device_id") != device_id:
        return ApprovalVerdict(False, "the approval was for another device")
    return ApprovalVerdict(True, f"approved by {sender}")
