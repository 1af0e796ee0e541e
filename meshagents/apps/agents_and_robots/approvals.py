"""The approval state machine: a pure core, no I/O, no clock (``now`` is passed in).

    book = ApprovalBook(bot_user_id="@bot:hub")
    t = book.open(device=..., capability=..., args=..., requester=..., now=...)
    book.posted(t.request.id, event_id)            # the request message's event id
    t = book.vote(vote, operators={"@op:hub"})     # a reaction or !approve / !deny
    for t in book.tick(now): ...                   # expiries, with their notices

States::

    pending ──(first counted 👍 / !approve)──> approved   (terminal)
       │ ────(first counted 👎 / !deny)─────> denied     (terminal)
       └─────(now >= expires_at)────────────> expired    (terminal)

Rules (the device checks the approval again on its side; this machine only decides
when the bot may send the envelope):

- A vote counts only when its sender is in ``operators`` (the manifest's operator
  Matrix ids, passed in per call), the Matrix layer verified the sending device
  (``Vote.verified``), and the sender is not the bot itself.
- One counted vote decides: a single operator's approval is enough, and a deny from
  any operator wins when it arrives before an approval. So each sender is counted at
  most once — the first counted vote ends the request.
- A reaction counts only on the request's own event in the approvals room; keys are
  👍 / 👎 with any skin tone or variation selector. Removing a reaction changes nothing.
- Terminal states never change. A vote on an expired-but-not-yet-ticked request
  expires it instead of counting.
- The operator who asked may approve their own request (a one-operator fleet needs
  that); ``allow_self_approval=False`` forbids it.

The request message is rendered from the trust core's binding
(``meshagents.trust.approval``: device id, capability, canonical-args digest, envelope
request id, deadline) when ``envelope_request_id`` is given, so the device can re-render
it from the envelope and check that the approval it is shown was given for exactly
what the operator read.

Every call returns a ``Transition`` whose ``effects`` say what the shell should post
(``post`` in the approvals or device room, ``alert`` in the approvals room) and when
to sign and send the envelope (``dispatch``); the approval's event id for the envelope
is ``request.decision_event_id``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Container, Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from meshagents.apps.agents_and_robots.commands import Command
from meshagents.apps.agents_and_robots.ids import new_request_id
from meshagents.trust.approval import ARG_PREVIEW_CHARS as ARG_PREVIEW_CHARS
from meshagents.trust.approval import Binding, make_binding, render_request
from meshagents.trust.approval import preview_args as preview_args
from meshagents.trust.approval import reaction_vote as reaction_vote

DEFAULT_TTL_S = 3600.0


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


TERMINAL = frozenset({State.APPROVED, State.DENIED, State.EXPIRED})


@dataclass(frozen=True)
class ApprovalRequest:
    """One request for approval. ``event_id`` is the request message in
    #operator-approvals; ``decision_event_id`` the reaction or !approve/!deny event
    that decided it (an approval's goes into the envelope)."""

    id: str
    device: str
    capability: str
    args: dict[str, Any] = field(hash=False)
    requester: str
    created_at: float
    expires_at: float
    room_id: str | None = None
    command_event_id: str | None = None
    event_id: str | None = None
    state: State = State.PENDING
    decided_by: str | None = None
    decision_event_id: str | None = None
    decided_at: float | None = None
    binding: Binding | None = None  # what R was rendered from (trust core), for the device's check
    alerted: frozenset[str] = frozenset()  # senders already alerted about, so alerts are once each

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class Vote:
    """An operator's 👍/👎 reaction or !approve/!deny message, as the shell saw it."""

    sender: str
    approve: bool
    event_id: str
    at: float
    verified: bool
    encrypted: bool = True
    via: Literal["reaction", "command"] = "reaction"
    reacts_to: str | None = None
    request_id: str | None = None


EffectKind = Literal["post", "alert", "dispatch"]
RoomRole = Literal["approvals", "device"]


@dataclass(frozen=True)
class Effect:
    """Something for the shell to do. ``dispatch`` means: sign and send the envelope."""

    kind: EffectKind
    room: RoomRole
    request_id: str
    text: str = ""
    html: str = ""
    reply_to: str | None = None


Outcome = Literal["opened", "approved", "denied", "expired", "ignored"]


@dataclass(frozen=True)
class Transition:
    """What one input did. ``reason`` says why a vote was ignored (``bot``,
    ``not_operator``, ``unverified_device``, ``unencrypted``, ``self_approval``,
    ``unknown_request``, ``already_approved`` / ``_denied`` / ``_expired``)."""

    request: ApprovalRequest | None
    outcome: Outcome
    reason: str = ""
    effects: tuple[Effect, ...] = ()

    @property
    def changed(self) -> bool:
        return self.outcome != "ignored"


def vote_from_reaction(
    *, sender: str, key: str, reacts_to: str, event_id: str, at: float, verified: bool, encrypted: bool
) -> Vote | None:
    """A Vote from an ``m.reaction`` (None when the key is neither 👍 nor 👎)."""
    approve = reaction_vote(key)
    if approve is None:
        return None
    return Vote(sender, approve, event_id, at, verified, encrypted, "reaction", reacts_to=reacts_to)


def vote_from_command(
    command: Command, *, sender: str, event_id: str, at: float, verified: bool, encrypted: bool
) -> Vote | None:
    """A Vote from a parsed ``!approve <id>`` / ``!deny <id>`` (None for other commands)."""
    if command.name not in ("approve", "deny"):
        return None
    return Vote(sender, command.name == "approve", event_id, at, verified, encrypted, "command",
                request_id=str(command.args["id"]))


class ApprovalBook:
    """The requests the bot knows, keyed by id. Mutable holder of frozen records."""

    def __init__(
        self,
        *,
        bot_user_id: str,
        ttl_s: float = DEFAULT_TTL_S,
        allow_self_approval: bool = True,
        require_encrypted: bool = False,
        new_id: Callable[[Container[str]], str] = new_request_id,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.bot_user_id = bot_user_id
        self.ttl_s = ttl_s
        self.allow_self_approval = allow_self_approval
        self.require_encrypted = require_encrypted
        self._new_id = new_id
        self._requests: dict[str, ApprovalRequest] = {}
        self._by_event: dict[str, str] = {}

    # ---- queries -------------------------------------------------------------------

    def get(self, request_id: str) -> ApprovalRequest | None:
        return self._requests.get(request_id)

    def by_event(self, event_id: str) -> ApprovalRequest | None:
        rid = self._by_event.get(event_id)
        return None if rid is None else self._requests.get(rid)

    def pending(self, device: str | None = None) -> list[ApprovalRequest]:
        return sorted(
            (r for r in self._requests.values()
             if r.state is State.PENDING and (device is None or r.device == device)),
            key=lambda r: (r.created_at, r.id),
        )

    def all(self) -> list[ApprovalRequest]:
        return list(self._requests.values())

    # ---- inputs --------------------------------------------------------------------

    def open(
        self,
        *,
        device: str,
        capability: str,
        args: Mapping[str, Any],
        requester: str,
        now: float,
        room_id: str | None = None,
        command_event_id: str | None = None,
        ttl_s: float | None = None,
        envelope_request_id: str | None = None,
        device_id: str | None = None,
    ) -> Transition:
        """A new pending request; effects: the request in #operator-approvals and
        "waiting for approval <id>" in the device room."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            raise ValueError("ttl_s must be positive")
        rid = self._new_id(self._requests)
        binding = None
        if envelope_request_id is not None:
            binding = make_binding(approval_id=rid, request_id=envelope_request_id,
                                   device_id=device_id or device, capability=capability, args=args,
                                   deadline=int(now + ttl), requester=requester)
        req = ApprovalRequest(
            id=rid, device=device, capability=capability, args=dict(args), requester=requester,
            created_at=now, expires_at=now + ttl, room_id=room_id, command_event_id=command_event_id,
            binding=binding,
        )
        self._requests[rid] = req
        minutes = _minutes(ttl)
        effects = (
            Effect("post", "approvals", rid, *_request_message(req)),
            Effect("post", "device", rid, *_plain(
                f"waiting for approval {rid} in #operator-approvals (expires in {minutes})"),
                reply_to=command_event_id),
        )
        return Transition(req, "opened", "", effects)

    def posted(self, request_id: str, event_id: str) -> ApprovalRequest:
        """Record the event id of the request message once the shell has sent it."""
        req = self._requests[request_id]
        if req.event_id is not None and req.event_id != event_id:
            raise ValueError(f"request {request_id} was already posted as {req.event_id}")
        req = replace(req, event_id=event_id)
        self._requests[request_id] = req
        self._by_event[event_id] = request_id
        return req

    def vote(self, vote: Vote, *, operators: Set[str]) -> Transition:
        """Count a vote if it may count; see the module docstring for the rules."""
        req = self.by_event(vote.reacts_to) if vote.via == "reaction" and vote.reacts_to else None
        if vote.via == "command" and vote.request_id:
            req = self._requests.get(vote.request_id)
        if vote.sender == self.bot_user_id:
            return Transition(req, "ignored", "bot")
        if req is None:
            effects: tuple[Effect, ...] = ()
            if vote.via == "command":
                effects = (Effect("post", "approvals", vote.request_id or "", *_plain(
                    f"no request {vote.request_id} (see !pending)"), reply_to=vote.event_id),)
            return Transition(None, "ignored", "unknown_request", effects)
        if req.state is State.PENDING and vote.at >= req.expires_at:
            return self._expire(req, vote.at)
        if req.terminal:
            effects = ()
            if vote.via == "command":
                effects = (Effect("post", "approvals", req.id, *_plain(
                    f"request {req.id} is already {req.state.value}"), reply_to=vote.event_id),)
            return Transition(req, "ignored", f"already_{req.state.value}", effects)
        reason = self._refusal(req, vote, operators)
        if reason:
            return self._ignore(req, vote, reason)
        return self._decide(req, vote)

    def tick(self, now: float) -> list[Transition]:
        """Expire every pending request whose time is up; their notices are the effects."""
        due = [r for r in self._requests.values() if r.state is State.PENDING and now >= r.expires_at]
        return [self._expire(r, now) for r in sorted(due, key=lambda r: (r.expires_at, r.id))]

    def forget(self, before: float) -> int:
        """Drop terminal requests decided before ``before``; how many went."""
        gone = [r for r in self._requests.values()
                if r.terminal and r.decided_at is not None and r.decided_at < before]
        for r in gone:
            del self._requests[r.id]
            if r.event_id is not None:
                self._by_event.pop(r.event_id, None)
        return len(gone)

    # ---- transitions -----------------------------------------------------------------

    def _refusal(self, req: ApprovalRequest, vote: Vote, operators: Set[str]) -> str:
        if vote.sender not in operators:
            return "not_operator"
        if not vote.verified:
            return "unverified_device"
        if self.require_encrypted and not vote.encrypted:
            return "unencrypted"
        if not self.allow_self_approval and vote.approve and vote.sender == req.requester:
            return "self_approval"
        return ""

    def _ignore(self, req: ApprovalRequest, vote: Vote, reason: str) -> Transition:
        if vote.sender in req.alerted:
            return Transition(req, "ignored", reason)
        req = replace(req, alerted=req.alerted | {vote.sender})
        self._requests[req.id] = req
        word = "approval" if vote.approve else "denial"
        why = {
            "not_operator": f"{vote.sender} is not an operator of {req.device}",
            "unverified_device": f"{vote.sender} voted from a device that is not verified (cross-signed)",
            "unencrypted": "the vote was not end-to-end encrypted",
            "self_approval": "the operator who asked cannot approve their own request here",
        }[reason]
        text = f"alert: ignored {word} of request {req.id}: {why}"
        return Transition(req, "ignored", reason, (Effect("alert", "approvals", req.id, *_plain(text),
                                                          reply_to=vote.event_id),))

    def _decide(self, req: ApprovalRequest, vote: Vote) -> Transition:
        state = State.APPROVED if vote.approve else State.DENIED
        req = replace(req, state=state, decided_by=vote.sender, decision_event_id=vote.event_id,
                      decided_at=vote.at)
        self._requests[req.id] = req
        summary = f"{req.capability} on {req.device}"
        if state is State.APPROVED:
            effects: tuple[Effect, ...] = (
                Effect("post", "approvals", req.id,
                       *_plain(f"approved {req.id} ({summary}) by {vote.sender}"), reply_to=req.event_id),
                Effect("post", "device", req.id, *_plain(f"approved {req.id} by {vote.sender}; sending"),
                       reply_to=req.command_event_id),
                Effect("dispatch", "device", req.id),
            )
            return Transition(req, "approved", "", effects)
        effects = (
            Effect("post", "approvals", req.id, *_plain(f"denied {req.id} ({summary}) by {vote.sender}"),
                   reply_to=req.event_id),
            Effect("post", "device", req.id, *_plain(f"denied {req.id} by {vote.sender}; nothing ran"),
                   reply_to=req.command_event_id),
        )
        return Transition(req, "denied", "", effects)

    def _expire(self, req: ApprovalRequest, now: float) -> Transition:
        req = replace(req, state=State.EXPIRED, decided_at=now)
        self._requests[req.id] = req
        waited = _minutes(req.expires_at - req.created_at)
        effects = (
            Effect("post", "approvals", req.id, *_plain(
                f"expired {req.id} ({req.capability} on {req.device}): no decision within {waited}"),
                reply_to=req.event_id),
            Effect("post", "device", req.id, *_plain(
                f"request {req.id} expired without approval; nothing ran"), reply_to=req.command_event_id),
        )
        return Transition(req, "expired", "", effects)


# ---- message text ---------------------------------------------------------------------

def _plain(text: str) -> tuple[str, str]:
    return text, html.escape(text)


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def _request_message(req: ApprovalRequest) -> tuple[str, str]:
    binding = req.binding or make_binding(
        approval_id=req.id, request_id="-", device_id=req.device, capability=req.capability, args=req.args,
        deadline=int(req.expires_at), requester=req.requester)
    return render_request(binding, req.args)


def pending_text(requests: Iterable[ApprovalRequest], now: float) -> tuple[str, str]:
    """``!pending``: one line per request waiting, plain text and HTML."""
    reqs = list(requests)
    if not reqs:
        return _plain("no requests waiting for approval")
    rows = [
        f"{r.id}  {r.device}  {r.capability}  asked by {r.requester}, "
        f"expires in {_minutes(r.expires_at - now)}"
        for r in reqs
    ]
    e = html.escape
    items = "".join(f"<li><code>{e(r)}</code></li>" for r in rows)
    return "waiting for approval:\n" + "\n".join(rows), f"<p>waiting for approval:</p><ul>{items}</ul>"
