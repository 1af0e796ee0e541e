"""The approval binding and the device's approval check: one pure definition, no I/O.

Public API::

    Binding(approval_id, request_id, device_id, capability, args_digest, deadline, requester)
    make_binding(*, approval_id, request_id, device_id, capability, args, deadline, requester)
    Binding.to_json() / Binding.from_json(data)      # the R content under APPROVAL_REQUEST_KEY
    binding.digest -> str                            # sha256 of its canonical JSON (shown in R)
    render_request(binding, args) -> (text, html)    # R's body and formatted_body, exactly
    request_content(binding, args) -> dict           # the whole m.text content of R
    reaction_vote(key) -> True (approve) | False (deny) | None
    command_vote(body) -> (approve, approval_id) | None       # "!approve <id>" / "!deny <id>"
    check_approval(envelope=, manifest=, approval=, approval_verified=, request=,
                   request_verified=, between=, now=, skew_s=30) -> ApprovalVerdict

Why one module: the bot writes R from the binding and the device re-renders R from
the envelope it is asked to run. With a stolen hub (controller key, bot account) the
attacker can sign any envelope and post any R, so the device accepts an approval
event A only when all of this holds (first failure wins, ``ApprovalVerdict.code`` is
stable and goes into the room and the audit chain as ``rejected_approval: <code>``):

- ``approval_not_found``     A is the event the signed envelope names
- ``approval_from_bot``      A's sender is not one of the manifest's ``bot_users``
- ``approval_not_approver``  A's sender is in the manifest's ``approvers``
- ``approval_unverified``    A was decrypted from a device its owner cross-signed
- ``approval_not_a_vote``    A is an approving reaction, or ``!approve <id>`` as the whole body
- ``request_not_found``      R (the event A reacts to, or the hint for ``!approve``) exists
- ``request_not_from_bot``   R was sent by a bot user the *manifest* lists (a device user
                             or any other member posting a look-alike R is refused)
- ``request_unverified``     R was decrypted from the bot's cross-signed device
- ``request_malformed``      R carries a binding
- ``approval_other_request`` A reacts to R / names R's approval id
- ``binding_device`` / ``binding_request`` / ``binding_capability`` / ``binding_args``
                             R's binding names this device, request id, capability and the
                             digest of exactly these canonical arguments
- ``approval_expired``       now <= deadline (+ skew), and A was sent before it
- ``text_mismatch``          R's ``body`` (and ``formatted_body`` when present) is exactly
                             :func:`render_request` of the binding: what the operator saw
                             is what runs
- ``approval_history_unknown`` the device could read the events between R and A
- ``approval_denied``        no 👎 on R / ``!deny <id>`` by a verified approver before A
- ``approval_ambiguous``     no second R with the same approval id before A

Single use (``approval_reused``) is not decided here: the device records A's event
id in the same transaction as the nonce and the intent entry (``AuditLog``), so two
envelopes naming one A can never both run, whatever their nonces.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from meshagents.trust.canonical import canonical_bytes, sha256_hex
from meshagents.trust.models import Envelope, Manifest

APPROVAL_REQUEST_KEY = "org.meshagents.approval_request"
APPROVE_COMMAND = "!approve"
DENY_COMMAND = "!deny"
APPROVE_KEY = "👍"
DENY_KEY = "👎"
#: Reaction keys, after skin tones and variation selectors are removed (one place: the
#: bot's state machine and the device's check both read these).
# Element's quick reactions include ✅ / ❌ beside 👍 / 👎: the bot and the device read these
APPROVE_KEYS = frozenset({APPROVE_KEY, "\u2705"})
DENY_KEYS = frozenset({DENY_KEY, "\u274c"})
#: The fs.write argument naming an uploaded file (``meshagents.matrix.attachments.FILE_ARG``).
FILE_ARG = "file"
_MODIFIERS = frozenset({chr(c) for c in range(0x1F3FB, 0x1F400)} | {"\ufe0f", "\ufe0e"})
ARG_PREVIEW_CHARS = 300
DEFAULT_SKEW_S = 30


@dataclass(frozen=True)
class Binding:
    """What one approval is for. ``deadline``: unix seconds after which it is void."""

    approval_id: str
    request_id: str
    device_id: str
    capability: str
    args_digest: str
    deadline: int
    requester: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["binding"] = self.digest
        return out

    @property
    def digest(self) -> str:
        return sha256_hex(canonical_bytes(asdict(self)))

    @classmethod
    def from_json(cls, data: Any) -> Binding | None:
        """The binding in R's content, or None when any field is missing or mistyped."""
        if not isinstance(data, Mapping):
            return None
        strs = ("approval_id", "request_id", "device_id", "capability", "args_digest", "requester")
        if not all(isinstance(data.get(k), str) for k in strs):
            return None
        deadline = data.get("deadline")
        if not isinstance(deadline, int) or isinstance(deadline, bool):
            return None
        return cls(
            approval_id=str(data["approval_id"]),
            request_id=str(data["request_id"]),
            device_id=str(data["device_id"]),
            capability=str(data["capability"]),
            args_digest=str(data["args_digest"]),
            deadline=deadline,
            requester=str(data["requester"]),
        )


def args_digest(args: Any) -> str:
    """sha256 hex of the canonical JSON of ``args`` (what the audit log keeps, too)."""
    return sha256_hex(canonical_bytes(args))


def make_binding(
    *,
    approval_id: str,
    request_id: str,
    device_id: str,
    capability: str,
    args: Mapping[str, Any],
    deadline: int,
    requester: str,
) -> Binding:
    return Binding(
        approval_id, request_id, device_id, capability, args_digest(dict(args)), int(deadline), requester
    )


def binding_for_envelope(env: Envelope, *, approval_id: str, deadline: int, requester: str) -> Binding:
    """The binding the device expects for ``env`` (R supplies only id, deadline, requester)."""
    return make_binding(
        approval_id=approval_id,
        request_id=env.request_id,
        device_id=env.device_id,
        capability=env.capability,
        args=env.args,
        deadline=deadline,
        requester=requester,
    )


def shown_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` for people: an uploaded file becomes ``name, size bytes, sha256 …`` — its key
    and URL never appear in #operator-approvals (the binding's digest covers them)."""
    if FILE_ARG not in args:
        return dict(args)
    try:
        raw = args[FILE_ARG]
        ref: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else {}
        described = f"{ref['name']}, {int(ref['size'])} bytes, sha256 {ref['sha256']}"
    except (ValueError, TypeError, KeyError):
        described = "(an unreadable file reference)"
    return {**args, FILE_ARG: described}


def preview_args(args: Mapping[str, Any], limit: int = ARG_PREVIEW_CHARS) -> str:
    """Arguments as readable JSON, long strings cut (the digest covers every byte)."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > limit:
            return value[:limit] + f"… ({len(value)} characters)"
        if isinstance(value, list):
            return [cut(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): cut(v) for k, v in value.items()}
        return value

    return json.dumps(cut(shown_args(args)), ensure_ascii=False, sort_keys=True, indent=None)


def render_request(binding: Binding, args: Mapping[str, Any]) -> tuple[str, str]:
    """R's plain body and HTML body, a pure function of the binding and the arguments."""
    b = binding
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(b.deadline))
    shown = preview_args(args)
    lines = [
        f"approval needed: request {b.approval_id}",
        f"device: {b.device_id}",
        f"capability: {b.capability}",
        f"arguments: {shown}",
        f"asked by: {b.requester}",
        f"expires: {expires}",
        f"binding: {b.digest}",
        f"react {APPROVE_KEY} to approve or {DENY_KEY} to deny, or write "
        f"{APPROVE_COMMAND} {b.approval_id} / {DENY_COMMAND} {b.approval_id}",
    ]
    e = html.escape
    body = (
        f"<p><strong>approval needed: request <code>{e(b.approval_id)}</code></strong></p><ul>"
        f"<li>device: <code>{e(b.device_id)}</code></li>"
        f"<li>capability: <code>{e(b.capability)}</code></li>"
        f"<li>arguments: <pre><code>{e(shown)}</code></pre></li>"
        f"<li>asked by: {e(b.requester)}</li>"
        f"<li>expires: {e(expires)}</li>"
        f"<li>binding: <code>{e(b.digest)}</code></li></ul>"
        f"<p>react {APPROVE_KEY} to approve or {DENY_KEY} to deny, or write "
        f"<code>{APPROVE_COMMAND} {e(b.approval_id)}</code> / "
        f"<code>{DENY_COMMAND} {e(b.approval_id)}</code></p>"
    )
    return "\n".join(lines), body


def request_content(binding: Binding, args: Mapping[str, Any]) -> dict[str, Any]:
    """The ``m.text`` content of R: the rendered text and the binding it was rendered from."""
    text, body = render_request(binding, args)
    return {
        "msgtype": "m.text",
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": body,
        APPROVAL_REQUEST_KEY: binding.to_json(),
    }


def reaction_vote(key: str) -> bool | None:
    """True for an approving key, False for a denying one (any skin tone), else None."""
    base = "".join(ch for ch in key.strip() if ch not in _MODIFIERS)
    if base in APPROVE_KEYS:
        return True
    if base in DENY_KEYS:
        return False
    return None


def command_vote(body: str) -> tuple[bool, str] | None:
    """(approve?, approval id) when the whole body is ``!approve <id>`` or ``!deny <id>``."""
    words = body.strip().split()
    if len(words) == 2 and words[0] in (APPROVE_COMMAND, DENY_COMMAND):
        return words[0] == APPROVE_COMMAND, words[1]
    return None


@dataclass(frozen=True)
class Vote:
    approve: bool
    reacts_to: str | None  # the event a reaction annotates
    approval_id: str | None  # the id a command names


def vote_of(event: Mapping[str, Any]) -> Vote | None:
    """The vote an event (``{"type", "content", ...}``) casts, if any."""
    content = event.get("content")
    if not isinstance(content, Mapping):
        return None
    if event.get("type") == "m.reaction":
        rel = content.get("m.relates_to")
        if not isinstance(rel, Mapping) or rel.get("rel_type") != "m.annotation":
            return None
        key, target = rel.get("key"), rel.get("event_id")
        if not isinstance(key, str) or not isinstance(target, str):
            return None
        approve = reaction_vote(key)
        return None if approve is None else Vote(approve, target, None)
    if event.get("type") == "m.room.message":
        body = content.get("body")
        parsed = command_vote(body) if isinstance(body, str) else None
        return None if parsed is None else Vote(parsed[0], None, parsed[1])
    return None


@dataclass(frozen=True)
class ApprovalVerdict:
    ok: bool
    code: str
    detail: str

    @property
    def reason(self) -> str:
        return self.detail if self.ok else f"{self.code}: {self.detail}"


def _no(code: str, detail: str) -> ApprovalVerdict:
    return ApprovalVerdict(False, code, detail)


def _ts_s(event: Mapping[str, Any]) -> int | None:
    ts = event.get("origin_server_ts")
    return ts // 1000 if isinstance(ts, int) and not isinstance(ts, bool) else None


def check_approval(
    *,
    envelope: Envelope,
    manifest: Manifest,
    approval: Mapping[str, Any] | None,
    approval_verified: bool,
    request: Mapping[str, Any] | None,
    request_verified: bool,
    between: Sequence[Mapping[str, Any]] | None,
    now: int,
    skew_s: int = DEFAULT_SKEW_S,
) -> ApprovalVerdict:
    """Does A (``approval``) approve exactly ``envelope``, asked for in R (``request``)?

    ``between`` is every event of the approvals room after R and before A, in room
    order, each with a ``verified`` flag (None: the device could not read them). See
    the module docstring for the rules and codes.
    """
    if approval is None or not envelope.approval or approval.get("event_id") != envelope.approval:
        return _no("approval_not_found", "the approval event the envelope names was not found")
    sender = str(approval.get("sender", ""))
    bots = set(manifest.bot_users)
    if sender in bots:
        return _no("approval_from_bot", f"{sender} is a bot; a bot cannot approve")
    if sender not in manifest.approvers:
        return _no("approval_not_approver", f"{sender} is not an approver in the manifest")
    if not approval_verified:
        return _no("approval_unverified", f"{sender}'s device is not verified (cross-signed)")
    vote = vote_of(approval)
    if vote is None or not vote.approve:
        why = f"the event is neither an approving reaction nor {APPROVE_COMMAND} <id>"
        return _no("approval_not_a_vote", why)
    if request is None:
        return _no("request_not_found", "the approval request event was not found")
    r_sender = str(request.get("sender", ""))
    if not bots:
        return _no("request_not_from_bot", "the manifest names no bot user, so no request can be trusted")
    if r_sender not in bots:
        return _no("request_not_from_bot", f"the request was posted by {r_sender}, not a bot of the manifest")
    if not request_verified:
        return _no("request_unverified", f"the request was not sent from {r_sender}'s verified device")
    content = request.get("content")
    info = Binding.from_json(content.get(APPROVAL_REQUEST_KEY) if isinstance(content, Mapping) else None)
    if info is None or not isinstance(content, Mapping):
        return _no("request_malformed", "the named event carries no approval binding")
    if vote.reacts_to is not None and vote.reacts_to != request.get("event_id"):
        return _no("approval_other_request", "the reaction is on another event")
    if vote.approval_id is not None and vote.approval_id != info.approval_id:
        return _no("approval_other_request", "the command approves another request")
    if info.device_id != manifest.device_id or envelope.device_id != manifest.device_id:
        return _no("binding_device", f"the approval was for device {info.device_id}")
    if info.request_id != envelope.request_id:
        return _no("binding_request", "the approval was for another request")
    if info.capability != envelope.capability:
        return _no("binding_capability", f"the approval was for {info.capability}, not {envelope.capability}")
    expected = binding_for_envelope(
        envelope, approval_id=info.approval_id, deadline=info.deadline, requester=info.requester
    )
    if info.args_digest != expected.args_digest:
        return _no("binding_args", "the approval was for other arguments")
    if now > info.deadline + skew_s:
        return _no("approval_expired", f"the approval's deadline {info.deadline} has passed (now {now})")
    a_ts = _ts_s(approval)
    if a_ts is not None and a_ts > info.deadline + skew_s:
        return _no("approval_expired", "the approval was given after the request's deadline")
    text, body = render_request(expected, envelope.args)
    if content.get("body") != text:
        return _no("text_mismatch", "the request's text is not what its binding says")
    if "formatted_body" in content and content.get("formatted_body") != body:
        return _no("text_mismatch", "the request's formatted text is not what its binding says")
    if between is None:
        return _no("approval_history_unknown", "the events between the request and the approval are unknown")
    r_id = request.get("event_id")
    for ev in between:
        other = ev.get("content")
        if (
            isinstance(other, Mapping)
            and ev.get("event_id") != r_id
            and isinstance(other.get(APPROVAL_REQUEST_KEY), Mapping)
            and other[APPROVAL_REQUEST_KEY].get("approval_id") == info.approval_id
        ):
            why = f"a second request {info.approval_id} was posted before the approval"
            return _no("approval_ambiguous", why)
        v = vote_of(ev)
        if v is None or v.approve:
            continue
        if str(ev.get("sender", "")) not in manifest.approvers or ev.get("verified") is not True:
            continue  # the bot ignores such votes too; they cannot block an approval
        if v.reacts_to == r_id or v.approval_id == info.approval_id:
            return _no("approval_denied", f"{ev.get('sender')} denied the request before it was approved")
    return ApprovalVerdict(True, "ok", f"approved by {sender}")
