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
    org.meshagents.rotation   anyone -> device room (self-authenticating, docs/protocol.md §8)
        {"statement": <rotation statement signed by old and new key>,
         "manifest": <the device's manifest re-signed by the new key> | null}
        the agent answers with an m.notice: "rotation accepted: ..." / "rotation refused: <code>: ..."

Replies in Element's conventions (docs/device_agent.md): an output too long or too binary
for the notice follows it as an encrypted ``m.file`` (the result event then carries
``"attachment": {"name", "size", "total", "sha256"}``); a request running over a second
gets a live ``m.notice`` marked with :data:`LIVE_KEY`, edited in place (``m.replace``)
at most once a second, its last edit the answer. ``fs.write`` may name an uploaded file
instead of ``content``: ``"file"`` is ``meshagents.matrix.attachments.FileArg``.

Approvals (ARCHITECTURE.md): the bot posts the request R in ``#operator-approvals`` as
an ``m.text`` whose content is ``meshagents.trust.approval.request_content(binding,
args)``: the text rendered from the binding, and under :data:`APPROVAL_REQUEST_KEY`::

    {"approval_id": "k3x9qa", "request_id": ..., "device_id": ..., "capability": ...,
     "args_digest": <sha256 of canonical args>, "deadline": <unix s>, "requester": ...,
     "binding": <sha256 of the canonical binding, also shown in the text>}

An operator approves with a 👍 reaction on R, or with ``!approve <approval_id>``. The
envelope's signed ``approval`` field is the event id of that approving event A. The
device agent fetches A, R and the events between them from the approvals room itself
and calls ``meshagents.trust.approval.check_approval``: a stolen controller key can
name an event, but cannot make an operator's verified device send it, and cannot
spend it twice.
"""

from __future__ import annotations

from meshagents.trust.approval import APPROVAL_REQUEST_KEY as APPROVAL_REQUEST_KEY
from meshagents.trust.approval import APPROVE_COMMAND as APPROVE_COMMAND
from meshagents.trust.approval import APPROVE_KEYS as APPROVE_REACTIONS
from meshagents.trust.approval import request_content as approval_request_content

ENVELOPE_EVENT = "org.meshagents.envelope"
RESULT_EVENT = "org.meshagents.result"
STATUS_EVENT = "org.meshagents.status"
ROTATION_EVENT = "org.meshagents.rotation"

#: Marks a device's live message and its m.replace edits: {"request_id", "state": "running" | "final"}
#: (meshagents/apps/device_agent/live.py); a client waiting for the answer skips "running" and takes "final".
LIVE_KEY = "org.meshagents.live"

__all__ = [
    "APPROVAL_REQUEST_KEY",
    "APPROVE_COMMAND",
    "APPROVE_REACTIONS",
    "ENVELOPE_EVENT",
    "LIVE_KEY",
    "RESULT_EVENT",
    "ROTATION_EVENT",
    "STATUS_EVENT",
    "approval_request_content",
]
