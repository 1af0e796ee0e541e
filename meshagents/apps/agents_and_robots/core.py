"""The bot's decisions for each room event: a pure core over the other cores.

    core = BotCore(bot_user_id="@bot:hub", approvals_room_id="!appr:hub")
    actions = core.on_message(message, devices)     # a decrypted room message
    actions = core.on_reaction(reaction, devices)   # an m.reaction in #operator-approvals
    actions = core.tick(now)                        # expiries (call every few seconds)
    core.posted(approval_id, event_id)              # after posting a PostApprovalRequest
    actions = core.on_device_result(result)         # a device agent's result event
    actions = core.check_stale(last_handshakes, now)  # stale-device alerts (hub peer data)

``check(device, capability, args) -> refusal text | None`` is where the trust core's
``decide()`` on the signed manifest plugs in (``resolve=False``: the device's file
system is not the hub's); it runs after the pre-check and before any approval is
asked for, so operators are never asked to approve what the manifest refuses.

``devices`` maps a device name to what the shell knows of it (``DeviceInfo``: the
manifest view, the operators the manifest names, revoked or not). The core does no
I/O and reads no clock; the shell carries out the returned actions in order:

    Reply(room_id, text, html, reply_to, alert)  an m.notice (alert=True: in #operator-approvals)
    RecordDispatch(...)        DispatchStore.record(...)
    SetDispatchStatus(...)     DispatchStore.set_status(...)
    PostApprovalRequest(...)   post in #operator-approvals, then core.posted(id, event_id)
    Dispatch(...)              run trust decide() on the signed manifest, sign the envelope
                               (request_id, approval=approval_event_id), send it into the
                               device room, then set the dispatch status to "sent"
    Revoke(device, ...)        revoke through the hub (peer, Matrix rooms, revoked mark)
    StatusQuery(...)           answer !status from the hub's state

Order of checks for a message: the bot's own messages and plain chat are ignored;
then the sender's rate limit (``ratelimit.RateLimiter``: one ``rate_limited`` reply per
run of refusals, then silence until the bucket refills); then the sender must be an
operator (of this room's device; in #operator-approvals, of any device) writing
from a verified device — otherwise a refusal and an alert;
then the grammar, the room, a revoked device (``peer_revoked``), the manifest
pre-check (a refusal at once, an alert and a ``refused`` row), and the approval flow.
"""

from __future__ import annotations

import html
import math
import secrets
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshagents.apps.agents_and_robots.alerts import DEFAULT_STALE_AFTER_S, StaleWatch, replay_alert
from meshagents.apps.agents_and_robots.approvals import (
    ApprovalBook,
    Transition,
    Vote,
    pending_text,
    vote_from_command,
    vote_from_reaction,
)
from meshagents.apps.agents_and_robots.commands import (
    Command,
    ManifestView,
    ParseError,
    RoomKind,
    parse,
    precheck,
    room_error,
    strip_reply_fallback,
)
from meshagents.apps.agents_and_robots.confirm import RevokeConfirmations
from meshagents.apps.agents_and_robots.dispatches import FINAL, args_digest
from meshagents.apps.agents_and_robots.help import render_help
from meshagents.apps.agents_and_robots.ratelimit import RateLimiter
from meshagents.apps.agents_and_robots.unverified import unverified_text
from meshagents.apps.agents_and_robots.uploads import upload_write_path
from meshagents.bus import APPROVAL_REQUEST_KEY as APPROVAL_REQUEST_KEY  # the shell's content key
from meshagents.errors import FnError
from meshagents.matrix.attachments import FILE_ARG
from meshagents.trust.approval import Binding


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    view: ManifestView = field(hash=False)
    operators: frozenset[str] = frozenset()
    revoked: bool = False
    #: what the device agent last said of its sandbox: "bwrap", "weak" (unsandboxed) or None
    sandbox: str | None = None
    device_id: str = ""  # the manifest's device id (the approval binding names it); "" = name


@dataclass(frozen=True)
class Message:
    """A decrypted room message as the shell saw it. ``device`` is the room's device
    (None in #operator-approvals); ``verified`` is the Matrix layer's verdict on the
    sending device."""

    room_id: str
    room_kind: RoomKind
    device: str | None
    sender: str
    event_id: str
    body: str
    at: float
    verified: bool
    encrypted: bool = True
    #: The Matrix layer's reason when not verified (``Incoming.trust``), e.g.
    #: "device_not_cross_signed" or "master_key_changed".
    trust: str = "ok"
    #: A bare ``!fs.write <path>`` replying to an upload: the signed file argument the
    #: shell made from the replied-to ``m.file`` (uploads.py), or why it could not.
    attachment: str | None = None
    attachment_problem: str | None = None


@dataclass(frozen=True)
class Reaction:
    sender: str
    key: str
    reacts_to: str
    event_id: str
    at: float
    verified: bool
    encrypted: bool = True


@dataclass(frozen=True)
class DeviceResult:
    """A device agent's answer to an envelope. The shell passes only results sent by
    the device's own Matrix user in its own room."""

    request_id: str
    device: str
    status: str
    at: float
    reason: str | None = None


@dataclass(frozen=True)
class Reply:
    room_id: str
    text: str
    html: str = ""
    reply_to: str | None = None
    alert: bool = False
    #: Sent as a plain m.notice even in an encrypted room: the one answer a session that
    #: holds no room key from us (unverified, or a reset identity) can read. Refusals only.
    unencrypted: bool = False


@dataclass(frozen=True)
class RecordDispatch:
    request_id: str
    room_id: str
    sender: str
    command: str
    capability: str | None
    args: dict[str, Any] = field(hash=False)
    now: float
    device: str | None
    command_event_id: str | None
    status: str = "received"
    reason: str | None = None


@dataclass(frozen=True)
class SetDispatchStatus:
    request_id: str
    status: str
    now: float
    reason: str | None = None
    approval_id: str | None = None
    approval_event_id: str | None = None


@dataclass(frozen=True)
class PostApprovalRequest:
    """The request message for #operator-approvals. The shell puts ``data`` into the
    event content under ``APPROVAL_REQUEST_KEY`` so device agents can read the request
    (id, binding, device, capability, expiry) without parsing the text."""

    approval_id: str
    text: str
    html: str
    data: dict[str, Any] = field(default_factory=dict, hash=False)
    #: What ``text`` was rendered from: the shell posts ``request_content(binding, args)``.
    binding: Binding | None = field(default=None, hash=False)
    args: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Dispatch:
    request_id: str
    device: str
    room_id: str
    capability: str
    args: dict[str, Any] = field(hash=False)
    approval_event_id: str | None
    reply_to: str | None
    #: The approval's short id and its request message R in #operator-approvals (the
    #: envelope event's ``approval_request_event`` hint); not part of equality.
    approval_id: str | None = field(default=None, compare=False)
    approval_request_event: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Revoke:
    device: str
    requested_by: str
    reply_to: str | None


@dataclass(frozen=True)
class StatusQuery:
    room_id: str
    device: str | None
    reply_to: str | None


Action = Reply | RecordDispatch | SetDispatchStatus | PostApprovalRequest | Dispatch | Revoke | StatusQuery


DASHBOARD = "dashboard"  # decided_by / decision event of a deny through the control API
DEVICE_STATUSES = FINAL - {"refused", "denied", "expired"}
Checker = Callable[[DeviceInfo, str, dict[str, Any]], str | None]


def _new_request_id() -> str:
    return "req-" + secrets.token_hex(8)


def _plain(text: str) -> str:
    return html.escape(text)


class BotCore:
    def __init__(
        self,
        *,
        bot_user_id: str,
        approvals_room_id: str,
        approvals: ApprovalBook | None = None,
        confirmations: RevokeConfirmations | None = None,
        new_request_id: Callable[[], str] = _new_request_id,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        check: Checker | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.approvals_room_id = approvals_room_id
        self.book = approvals or ApprovalBook(bot_user_id=bot_user_id)
        self.confirmations = confirmations or RevokeConfirmations()
        self._new_request_id = new_request_id
        self._dispatch_of: dict[str, str] = {}  # approval id -> dispatch request id (while open)
        self._request_of: dict[str, str] = {}  # approval id -> dispatch request id (kept for listings)
        self.stale = StaleWatch(threshold_s=stale_after_s)
        self._check = check
        self.limiter = limiter if limiter is not None else RateLimiter()

    # ---- inputs ------------------------------------------------------------------------

    def on_message(self, msg: Message, devices: Mapping[str, DeviceInfo]) -> list[Action]:
        body = strip_reply_fallback(msg.body)
        if msg.sender == self.bot_user_id or not body.lstrip().startswith("!"):
            return []  # the bot's own words and ordinary chat
        # Before anything else: a flood, even from a stranger, costs one bucket update.
        limit = self.limiter.take(msg.sender, msg.at)
        if not limit.allowed:
            if not limit.first_refusal:
                return []
            wait = max(1, math.ceil(limit.retry_after_s))
            return [self._reply(msg, f"rate_limited: too many commands from {msg.sender}; "
                                     f"nothing was run; try again in {wait} s")]
        refusal = self._authorise(msg, devices)  # before parsing: strangers cost no parsing
        if refusal:
            return refusal
        parsed = self._upload_write(msg, body) or parse(body)
        if isinstance(parsed, Reply):
            return [parsed]
        if isinstance(parsed, ParseError):
            return [self._reply(msg, parsed.reply_text())]
        wrong = room_error(parsed, msg.room_kind)
        if wrong is not None:
            return [self._reply(msg, wrong.reply_text())]
        if parsed.is_local:
            return self._local(parsed, msg, devices)
        return self._capability(parsed, msg, devices)

    def _upload_write(self, msg: Message, body: str) -> Command | ParseError | Reply | None:
        """``!fs.write <path>`` replying to an uploaded file: fs.write with the file argument."""
        if msg.attachment is None and msg.attachment_problem is None:
            return None
        path = upload_write_path(body)
        if path is None:
            return None
        if msg.attachment is None:
            return self._reply(msg, f"not sent: {msg.attachment_problem}")
        checked = parse(f"!fs.write {shlex.quote(path)} x")  # the path rules of the grammar
        if isinstance(checked, ParseError):
            return checked
        return Command("fs.write", "fs.write", {"path": checked.args["path"], FILE_ARG: msg.attachment},
                       raw=body)

    def on_reaction(self, reaction: Reaction, devices: Mapping[str, DeviceInfo]) -> list[Action]:
        """An ``m.reaction`` seen in #operator-approvals."""
        vote = vote_from_reaction(sender=reaction.sender, key=reaction.key, reacts_to=reaction.reacts_to,
                                  event_id=reaction.event_id, at=reaction.at, verified=reaction.verified,
                                  encrypted=reaction.encrypted)
        if vote is None:
            return []
        req = self.book.by_event(reaction.reacts_to)
        return self._apply(self.book.vote(vote, operators=self._operators_of(req.device if req else None,
                                                                              devices)))

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        self.limiter.forget(now)
        for transition in self.book.tick(now):
            out += self._apply(transition)
        return out

    def posted(self, approval_id: str, event_id: str) -> None:
        self.book.posted(approval_id, event_id)

    def forget(self, before: float) -> int:
        """Drop requests decided before ``before`` (memory stays bounded); how many went."""
        gone = self.book.forget(before)
        if gone:
            known = {r.id for r in self.book.all()}
            for approval_id in [a for a in self._request_of if a not in known]:
                del self._request_of[approval_id]
        return gone

    def request_id_of(self, approval_id: str) -> str | None:
        """The dispatch request id an approval belongs to (also after its decision)."""
        return self._request_of.get(approval_id)

    def deny_from_dashboard(self, approval_id: str, now: float) -> tuple[str, list[Action]]:
        """A deny from the control API: the bearer holder is the operator. Returns
        (outcome, actions): ``denied``, ``not_found``, or ``decided`` (already approved,
        denied or expired — a deny after the expiry expires the request instead)."""
        req = self.book.get(approval_id)
        if req is None:
            return "not_found", []
        if req.terminal:
            return "decided", []
        vote = Vote(DASHBOARD, False, DASHBOARD, now, True, True, "command", request_id=approval_id)
        transition = self.book.vote(vote, operators=frozenset({DASHBOARD}))
        actions = self._apply(transition)
        return ("denied" if transition.outcome == "denied" else "decided"), actions

    def on_device_result(self, result: DeviceResult) -> list[Action]:
        """Record the device's final status; a replay it refused is also an alert."""
        status, reason = result.status, result.reason
        if status not in DEVICE_STATUSES:
            status, reason = "error", f"unknown status {result.status[:64]!r}"
        out: list[Action] = [SetDispatchStatus(result.request_id, status, result.at, reason=reason)]
        if status == "rejected_nonce":
            alert = replay_alert(result.device, result.request_id, reason or "")
            out.append(Reply(self.approvals_room_id, alert.text, alert.html, alert=True))
        return out

    def check_stale(self, last_handshakes: Mapping[str, float | None], now: float) -> list[Action]:
        """Alerts for devices whose last handshake is older than ``stale_after_s``."""
        return [Reply(self.approvals_room_id, a.text, a.html, alert=True)
                for a in self.stale.check(last_handshakes, now)]

    # ---- checks ------------------------------------------------------------------------

    @staticmethod
    def _operators_of(device: str | None, devices: Mapping[str, DeviceInfo]) -> frozenset[str]:
        info = devices.get(device) if device else None
        return info.operators if info else frozenset()

    def _authorise(self, msg: Message, devices: Mapping[str, DeviceInfo]) -> list[Action]:
        if msg.room_kind == "device":
            operators = self._operators_of(msg.device, devices)
            where = f"operator of {msg.device}"
        else:
            operators = frozenset().union(*(d.operators for d in devices.values()))
            where = "operator"
        if msg.sender not in operators:
            why = f"{msg.sender} is not an {where}"
            told = f"refused: {why}"
        elif not msg.verified:
            why, told = unverified_text(msg.trust)
        else:
            return []
        room = msg.device or "#operator-approvals"
        return [
            replace(self._reply(msg, told), unencrypted=True),
            Reply(self.approvals_room_id, f"alert: refused a command in {room}: {why}",
                  _plain(f"alert: refused a command in {room}: {why}"), alert=True),
        ]

    # ---- local commands ----------------------------------------------------------------

    def _local(self, cmd: Command, msg: Message, devices: Mapping[str, DeviceInfo]) -> list[Action]:
        info = devices.get(msg.device) if msg.device else None
        match cmd.name:
            case "help":
                rendered = render_help(msg.device or "", info.view if info else {}, room=msg.room_kind,
                                       topic=cmd.args.get("topic"), sandbox=info.sandbox if info else None)
                return [Reply(msg.room_id, rendered.text, rendered.html, msg.event_id)]
            case "status":
                return [StatusQuery(msg.room_id, msg.device, msg.event_id)]
            case "pending":
                text, body = pending_text(self.book.pending(msg.device), msg.at)
                return [Reply(msg.room_id, text, body, msg.event_id)]
            case "approve" | "deny":
                vote = vote_from_command(cmd, sender=msg.sender, event_id=msg.event_id, at=msg.at,
                                         verified=msg.verified, encrypted=msg.encrypted)
                assert vote is not None  # approve / deny always make a vote
                req = self.book.get(str(cmd.args["id"]))
                return self._apply(self.book.vote(vote, operators=self._operators_of(
                    req.device if req else None, devices)))
            case "revoke":
                device = str(cmd.args["device"])
                if device not in devices:
                    return [self._reply(msg, f"no device {device}")]
                step = self.confirmations.handle(cmd, sender=msg.sender, now=msg.at)
                out: list[Action] = [self._reply(msg, step.text)]
                if step.outcome == "confirmed":
                    out.append(Revoke(device, msg.sender, msg.event_id))
                return out
        return [self._reply(msg, f"!{cmd.name} is not handled here")]  # pragma: no cover - table is closed

    # ---- capability commands -----------------------------------------------------------

    def _capability(self, cmd: Command, msg: Message, devices: Mapping[str, DeviceInfo]) -> list[Action]:
        info = devices.get(msg.device) if msg.device else None
        if info is None:
            return [self._reply(msg, "no manifest is known for this room's device; nothing was sent")]
        try:
            args_digest(cmd.args)
        except FnError as exc:  # the parser refuses these already; never crash the bot on one
            return [self._reply(msg, f"bad_arguments: {exc.message}")]
        rid = self._new_request_id()
        check = precheck(cmd, info.view)
        capability = check.capability or str(cmd.capability)
        record = RecordDispatch(rid, msg.room_id, msg.sender, cmd.name, capability, dict(cmd.args), msg.at,
                                info.name, msg.event_id)
        if info.revoked:
            return [record, SetDispatchStatus(rid, "peer_revoked", msg.at, reason="device revoked"),
                    self._reply(msg, f"peer_revoked: {info.name} is revoked; nothing was sent")]
        refusal = check.text if not check.allowed else None
        if refusal is None and self._check is not None:
            refusal = self._check(info, capability, dict(cmd.args))
        if not check.allowed or refusal is not None:
            text = refusal or "capability rejected"
            alert = f"alert: refused {capability} on {info.name} for {msg.sender}: {text}"
            return [
                RecordDispatch(rid, msg.room_id, msg.sender, cmd.name, capability, dict(cmd.args), msg.at,
                               info.name, msg.event_id, status="refused", reason=text),
                self._reply(msg, text),
                Reply(self.approvals_room_id, alert, _plain(alert), alert=True),
            ]
        if not check.requires_approval:
            return [record,
                    Dispatch(rid, info.name, msg.room_id, capability, dict(cmd.args), None, msg.event_id)]
        opened = self.book.open(device=info.name, capability=capability, args=cmd.args,
                                requester=msg.sender, now=msg.at, room_id=msg.room_id,
                                command_event_id=msg.event_id, envelope_request_id=rid,
                                device_id=info.device_id or info.name)
        assert opened.request is not None  # open always makes a request
        self._dispatch_of[opened.request.id] = rid
        self._request_of[opened.request.id] = rid
        return [record, SetDispatchStatus(rid, "pending_approval", msg.at, approval_id=opened.request.id),
                *self._apply(opened)]

    # ---- effects -> actions ------------------------------------------------------------

    def _apply(self, t: Transition) -> list[Action]:
        req = t.request
        out: list[Action] = []
        rid = self._dispatch_of.get(req.id) if req else None
        if req is not None and rid is not None and t.outcome in ("approved", "denied", "expired"):
            reason = "no decision before expiry" if t.outcome == "expired" else None
            out.append(SetDispatchStatus(rid, t.outcome, req.decided_at or 0.0, reason=reason,
                                         approval_event_id=req.decision_event_id))
        for effect in t.effects:
            if effect.kind == "dispatch" and req is not None and rid is not None:
                out.append(Dispatch(rid, req.device, req.room_id or "", req.capability, dict(req.args),
                                    req.decision_event_id, req.command_event_id, approval_id=req.id,
                                    approval_request_event=req.event_id))
            elif effect.kind == "post" and effect.room == "approvals" and t.outcome == "opened" and req:
                data = {"approval_id": req.id, "request_id": rid,
                        "binding": req.binding.digest if req.binding else None,
                        "device": req.device, "capability": req.capability,
                        "expires_at": int(req.expires_at)}
                out.append(PostApprovalRequest(effect.request_id, effect.text, effect.html, data,
                                               req.binding, dict(req.args)))
            elif effect.room == "device" and req is not None and req.room_id:
                out.append(Reply(req.room_id, effect.text, effect.html, effect.reply_to))
            elif effect.room == "approvals":
                out.append(Reply(self.approvals_room_id, effect.text, effect.html, effect.reply_to,
                                 alert=effect.kind == "alert"))
        if req is not None and req.terminal and rid is not None:
            self._dispatch_of.pop(req.id, None)
        return out

    @staticmethod
    def _reply(msg: Message, text: str) -> Reply:
        return Reply(msg.room_id, text, _plain(text), msg.event_id)
