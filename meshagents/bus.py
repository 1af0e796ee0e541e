"""The Matrix bus contract between the bot and the device agents (pure, no I/O).

This module is the one owner of every event content below: each has a frozen
dataclass that builds it (``to_content()``) and parses it (``from_content(content)``,
which never raises and returns None, or a lenient value, for what it cannot read), and
both the bot and the device agent go through them, so the two sides cannot drift::

    EnvelopeEvent(envelope, reply_to, approval_request_event)   org.meshagents.envelope
    ResultEvent(request_id, device_id, status, ...)             org.meshagents.result
    StatusEvent(device_id, state, ts, detail, sandbox)          org.meshagents.status
    RotationEvent(statement, manifest)                          org.meshagents.rotation
    LiveMarker(request_id, state)                               the LIVE_KEY marker
    approval_request(binding, args, device=, text=)             R, the m.text in #operator-approvals

Event types (custom, namespaced, hidden in Element's timeline)::

    org.meshagents.envelope   bot -> device room
        {"envelope": <signed Envelope dict>,
         "reply_to": "$operator_command_event" | null,   # the agent's notice replies to it
         "approval_request_event": "$R" | null}           # hint: the request the approval answers
    org.meshagents.result     device agent -> its room; since the agent's answer carries it
                              (RESULT_KEY of the m.notice), sent alone only by older agents
        {"request_id", "device_id", "status", "exit_code": int | null, "output": str,
         "truncated": bool, "audit_seq": int | null, "duration_ms": int}
    org.meshagents.status     device agent -> its room (on start, on ok <-> degraded)
        {"device_id", "state": "ok" | "degraded", "ts": int (unix ms), "detail": str}
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meshagents.trust.approval import APPROVAL_REQUEST_KEY as APPROVAL_REQUEST_KEY
from meshagents.trust.approval import APPROVE_COMMAND as APPROVE_COMMAND
from meshagents.trust.approval import APPROVE_KEYS as APPROVE_REACTIONS
from meshagents.trust.approval import Binding
from meshagents.trust.approval import request_content as approval_request_content

ENVELOPE_EVENT = "org.meshagents.envelope"
RESULT_EVENT = "org.meshagents.result"
STATUS_EVENT = "org.meshagents.status"
ROTATION_EVENT = "org.meshagents.rotation"

#: The result carried by the agent's answer itself: the ``m.notice`` replying to the
#: command (or the final edit of a live message) holds the ``org.meshagents.result``
#: content under this key, so each answer is one event (clients ignore unknown keys).
#: Older agents send a separate ``RESULT_EVENT``; readers accept both (:func:`carried_result`).
RESULT_KEY = RESULT_EVENT

#: Marks a device's live message and its m.replace edits: {"request_id", "state": "running" | "final"}
#: (meshagents/apps/device_agent/live.py); a client waiting for the answer skips "running" and takes "final".
LIVE_KEY = "org.meshagents.live"

#: A request id as the bot's parser and the trust core bound it (an event field, not a check).
MAX_REQUEST_ID = 128
SANDBOX_MODES = ("bwrap", "weak")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _event_id(value: Any) -> str | None:
    """A Matrix event id (``$...``), or None."""
    return value if isinstance(value, str) and value.startswith("$") else None


@dataclass(frozen=True)
class EnvelopeEvent:
    """``org.meshagents.envelope``: a signed envelope for the device, bot -> device room.

    ``envelope`` is the signed Envelope dict as sent; parsed, it is whatever the event
    carries (unverified: ``meshagents.trust.envelope.verify`` judges it). ``reply_to`` is
    the operator's command event (the agent's answer replies to it);
    ``approval_request_event`` only hints where the approval's request R is.
    """

    envelope: Any
    reply_to: str | None = None
    approval_request_event: str | None = None

    def to_content(self) -> dict[str, Any]:
        return {
            "envelope": self.envelope,
            "reply_to": self.reply_to,
            "approval_request_event": self.approval_request_event,
        }

    @classmethod
    def from_content(cls, content: Any) -> EnvelopeEvent:
        """Never raises. A bare envelope dict (``--replay-test``) is read as an event
        without reply and hint; anything else keeps its raw value for the verifier to refuse."""
        if not isinstance(content, Mapping):
            return cls(content)
        inner = content.get("envelope")
        hint = content.get("approval_request_event")
        return cls(
            inner if isinstance(inner, Mapping) else content,
            _event_id(content.get("reply_to")),
            hint if isinstance(hint, str) and hint else None,
        )

    @property
    def approval(self) -> str | None:
        """The approval event A the envelope names (unverified: only for fetching it)."""
        a = self.envelope.get("approval") if isinstance(self.envelope, Mapping) else None
        return a if isinstance(a, str) and a else None

    def get(self, name: str) -> Any:
        """One field of the (unverified) envelope, or None."""
        return self.envelope.get(name) if isinstance(self.envelope, Mapping) else None


@dataclass(frozen=True)
class Attachment:
    """The ``m.file`` that carries a result's whole output (the device's attach.py)."""

    name: str
    size: int  # bytes sent
    total: int  # bytes before the cut at the attachment cap
    sha256: str  # hex, of the plaintext sent

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "total": self.total, "sha256": self.sha256}


def carried_result(content: Any) -> dict[str, Any] | None:
    """The result content an ``m.notice`` carries under :data:`RESULT_KEY`, else None
    (who may send it — the device's own Matrix user in its own room — is the reader's check)."""
    if not isinstance(content, Mapping) or content.get("msgtype") != "m.notice":
        return None
    carried = content.get(RESULT_KEY)
    return dict(carried) if isinstance(carried, Mapping) else None


@dataclass(frozen=True)
class ResultEvent:
    """``org.meshagents.result``: how one request ended, device agent -> its room.

    ``status``: ``ok``, ``error`` or a refusal code (``rejected_*``); ``reason`` its
    stable code or detail; ``output`` already cut to fit one event.
    """

    request_id: str
    device_id: str
    status: str
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    audit_seq: int | None = None
    duration_ms: int = 0
    reason: str = ""
    capability: str = ""
    attachment: Attachment | None = None

    def to_content(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"attachment": self.attachment.to_json()} if self.attachment else {}
        return {
            **extra,
            "request_id": self.request_id,
            "device_id": self.device_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "output": self.output,
            "truncated": self.truncated,
            "audit_seq": self.audit_seq,
            "duration_ms": self.duration_ms,
            "reason": self.reason,
            "capability": self.capability,
        }

    @classmethod
    def from_content(cls, content: Any) -> ResultEvent | None:
        """None without a request id (1-128 characters) and a status; other fields that
        are missing or mistyped read as their defaults."""
        if not isinstance(content, Mapping):
            return None
        rid, status = content.get("request_id"), content.get("status")
        if not isinstance(rid, str) or not isinstance(status, str) or not rid or len(rid) > MAX_REQUEST_ID:
            return None
        att = content.get("attachment")
        attachment = None
        if isinstance(att, Mapping):
            name, digest = att.get("name"), att.get("sha256")
            size, total = _int_or_none(att.get("size")), _int_or_none(att.get("total"))
            if isinstance(name, str) and isinstance(digest, str) and size is not None and total is not None:
                attachment = Attachment(name, size, total, digest)
        return cls(
            request_id=rid,
            device_id=_str_or_none(content.get("device_id")) or "",
            status=status,
            exit_code=_int_or_none(content.get("exit_code")),
            output=_str_or_none(content.get("output")) or "",
            truncated=content.get("truncated") is True,
            audit_seq=_int_or_none(content.get("audit_seq")),
            duration_ms=_int_or_none(content.get("duration_ms")) or 0,
            reason=_str_or_none(content.get("reason")) or "",
            capability=_str_or_none(content.get("capability")) or "",
            attachment=attachment,
        )


@dataclass(frozen=True)
class StatusEvent:
    """``org.meshagents.status``: the agent's state, device agent -> its room (on start and
    on ok <-> degraded). ``ts`` in milliseconds; ``sandbox``: ``bwrap`` or ``weak``."""

    device_id: str
    state: str
    ts: int | float | None
    detail: str = ""
    sandbox: str | None = None

    def to_content(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": self.device_id, "state": self.state, "ts": self.ts,
                               "detail": self.detail}
        if self.sandbox is not None:
            out["sandbox"] = self.sandbox
        return out

    @property
    def at_s(self) -> float | None:
        """When the agent posted it, in unix seconds (``ts`` is milliseconds, as Matrix's own)."""
        return None if self.ts is None else float(self.ts) / 1000.0

    @classmethod
    def from_content(cls, content: Any) -> StatusEvent | None:
        """None without a ``state`` string; a mistyped ``ts`` is None, an unknown sandbox None."""
        if not isinstance(content, Mapping) or not isinstance(content.get("state"), str):
            return None
        ts = content.get("ts")
        box = content.get("sandbox")
        return cls(
            device_id=_str_or_none(content.get("device_id")) or "",
            state=str(content["state"]),
            ts=ts if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
            detail=_str_or_none(content.get("detail")) or "",
            sandbox=box if box in SANDBOX_MODES else None,
        )


@dataclass(frozen=True)
class RotationEvent:
    """``org.meshagents.rotation``: a rotation statement and the manifest re-signed by the
    new key, anyone -> device room (self-authenticating; docs/protocol.md §8).

    Parsed, ``manifest`` is the raw value (the agent refuses one that is not an object
    after it has judged the statement)."""

    statement: dict[str, Any]
    manifest: Any = None

    def to_content(self) -> dict[str, Any]:
        return {"statement": self.statement, "manifest": self.manifest}

    @classmethod
    def from_content(cls, content: Any) -> RotationEvent | None:
        """None when the event carries no statement object."""
        if not isinstance(content, Mapping) or not isinstance(content.get("statement"), dict):
            return None
        return cls(content["statement"], content.get("manifest"))


LiveState = Literal["running", "final"]


@dataclass(frozen=True)
class LiveMarker:
    """The :data:`LIVE_KEY` marker of a device's live message and its edits."""

    request_id: str
    state: str = "running"

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "state": self.state}

    @classmethod
    def from_content(cls, content: Any) -> LiveMarker | None:
        """The marker of a message content, or None when it carries none."""
        marker = content.get(LIVE_KEY) if isinstance(content, Mapping) else None
        if not isinstance(marker, Mapping):
            return None
        rid, state = marker.get("request_id"), marker.get("state")
        if not isinstance(rid, str) or not isinstance(state, str):
            return None
        return cls(rid, state)


def approval_request(
    binding: Binding | None, args: Mapping[str, Any], *, device: str | None, text: str = ""
) -> dict[str, Any]:
    """R, the ``m.text`` the bot posts in ``#operator-approvals``: the trust core's
    :func:`approval_request_content` (what the device re-renders and checks), plus the
    device's name for people and tools; without a binding, ``text`` alone."""
    plain: dict[str, Any] = {"msgtype": "m.text", "body": text}
    content = approval_request_content(binding, args) if binding is not None else plain
    fields: dict[str, Any] = dict(content.get(APPROVAL_REQUEST_KEY) or {})
    content[APPROVAL_REQUEST_KEY] = {**fields, "device": device}
    return content


def approval_request_fields(content: Any) -> dict[str, Any] | None:
    """What R carries under :data:`APPROVAL_REQUEST_KEY`, or None (the device's check reads
    the binding itself through ``meshagents.trust.approval.Binding.from_json``)."""
    data = content.get(APPROVAL_REQUEST_KEY) if isinstance(content, Mapping) else None
    return dict(data) if isinstance(data, Mapping) else None


__all__ = [
    "APPROVAL_REQUEST_KEY",
    "APPROVE_COMMAND",
    "APPROVE_REACTIONS",
    "ENVELOPE_EVENT",
    "LIVE_KEY",
    "RESULT_EVENT",
    "RESULT_KEY",
    "ROTATION_EVENT",
    "STATUS_EVENT",
    "Attachment",
    "EnvelopeEvent",
    "LiveMarker",
    "ResultEvent",
    "RotationEvent",
    "StatusEvent",
    "approval_request",
    "approval_request_content",
    "approval_request_fields",
    "carried_result",
]
