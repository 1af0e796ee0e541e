"""The bot's I/O shell: a Matrix client, the device directory and the control API
around the pure ``BotCore``.

    shell = BotShell(cfg, directory=FileDirectory(path), hub=LocalHub(path))
    await shell.start()        # Matrix login + first sync, #operator-approvals, loops, control API
    ...
    await shell.stop()

What it does (docs/bot.md has the operator's view):

- joins the rooms operators invite it to and ``#operator-approvals`` (created when
  missing: encrypted, operators admin (100) next to the bot, its creator), maps each device
  room to its device (alias ``#dev-<name>`` / ``#cont-<name>``, else the room the
  manifest's ``matrix_user`` shares with the bot) and invites device users into the
  approvals room (they fetch approvals from it themselves);
- feeds room messages and reactions to the core and carries out its actions in order,
  under one lock (the core's state is not shared with anything else);
- ``check``: the trust core's ``decide(manifest, capability, args, resolve=False)``
  before any approval is asked, and again right before signing (the manifest may
  have changed while the request waited);
- signs envelopes through the catalog function ``envelope_sign`` (controller key
  ``controller/ed25519`` in the key store) and sends them as
  ``meshagents.bus.ENVELOPE_EVENT`` into the device room;
- device results (carried by the agent's answer under ``RESULT_KEY``, or a separate
  ``RESULT_EVENT`` from older agents; only from the device's own Matrix user in its own
  room) update the dispatch row; ``rejected_nonce`` is a replay alert; ``STATUS_EVENT``
  is remembered for the control API's ``/devices``;
- follows the hub's event stream (``HubDirectory.follow``: revocations, new peers and
  handshakes pushed, resumed with ``Last-Event-ID``) and refreshes the directory every
  ``poll_s`` only while that stream is down (every ``stream_poll_s`` as a safety net
  otherwise); ticks the core every ``tick_s`` (approval expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents import trace
from meshagents.apps.agents_and_robots.approvals import ApprovalBook
from meshagents.apps.agents_and_robots.commands import Command, RoomKind, parse, strip_reply_fallback
from meshagents.apps.agents_and_robots.control import ControlApi, DeviceStatus, approval_rows, device_rows
from meshagents.apps.agents_and_robots.core import (
    Action,
    BotCore,
    DeviceInfo,
    DeviceResult,
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
from meshagents.apps.agents_and_robots.directory import DeviceDirectory, DeviceRecord, HubLike
from meshagents.apps.agents_and_robots.dispatches import APP, DispatchStore
from meshagents.apps.agents_and_robots.ids import normalize_request_id
from meshagents.apps.agents_and_robots.ratelimit import RateLimiter
from meshagents.apps.agents_and_robots.uploads import reply_target, upload_write_path
from meshagents.bus import (
    APPROVE_COMMAND,
    ENVELOPE_EVENT,
    RESULT_EVENT,
    STATUS_EVENT,
    EnvelopeEvent,
    ResultEvent,
    StatusEvent,
    approval_request,
    carried_result,
)
from meshagents.errors import FnError
from meshagents.matrix import attachments
from meshagents.matrix.client import ClientConfig, Incoming, MatrixClient
from meshagents.matrix.rooms import approvals_levels_fixed, approvals_power_levels
from meshagents.runtime import api
from meshagents.trust.manifest import decide

log = logging.getLogger("agents_and_robots")

APPROVALS_ALIAS = "operator-approvals"
ROOM_PREFIXES = ("dev", "cont")
_NEGATIVE_TTL_S = 5.0  # a device enrolled just now gets its room within seconds; a look-up is cheap
FORGET_AFTER_S = 7 * 86400.0  # decided requests stay listed (control API) for a week
DEFAULT_WRITE_BYTES = 1 << 20  # fs.write's cap when the manifest names none (as the device)


@dataclass(frozen=True)
class ShellConfig:
    """Everything the shell needs besides the directory and the hub adapter."""

    client: ClientConfig
    server_name: str
    #: Admins of #operator-approvals besides the manifests' approvers.
    operators: tuple[str, ...] = ()
    approvals_alias: str = APPROVALS_ALIAS
    control_hosts: tuple[str, ...] = ("127.0.0.1",)
    control_port: int = 8766
    control_token: str = ""
    poll_s: float = 2.0
    #: The refresh period while the hub's event stream is up (changes are pushed then).
    stream_poll_s: float = 60.0
    tick_s: float = 2.0
    stale_after_s: float = 24 * 3600.0
    approval_ttl_s: float = 3600.0
    envelope_ttl_s: int = 300
    #: Per-sender command rate limit (token bucket): refill per minute, and burst.
    commands_per_minute: float = 120.0
    command_burst: int = 30
    store_path: Path | None = None


def room_kind_of(alias: str | None, server_name: str) -> tuple[str, str] | None:
    """``#dev-home:hs`` -> ("dev", "home"); anything else -> None."""
    if not alias or not alias.startswith("#") or not alias.endswith(f":{server_name}"):
        return None
    local = alias[1:-(len(server_name) + 1)]
    for prefix in ROOM_PREFIXES:
        if local.startswith(prefix + "-") and len(local) > len(prefix) + 1:
            return prefix, local[len(prefix) + 1:]
    return None


def result_from_content(content: Mapping[str, Any], device: str, at: float) -> DeviceResult | None:
    """A device's ``RESULT_EVENT`` content -> DeviceResult (None when malformed)."""
    result = ResultEvent.from_content(content)
    if result is None:
        return None
    reason = None
    if result.status != "ok":
        reason = result.output[:200] or None
    return DeviceResult(result.request_id, device, result.status, at, reason=reason)


def device_checkable_vote(body: str | None = None, *, reaction_key: str | None = None) -> str | None:
    """Why an approving vote the core would count could not pass the device's own check
    (``meshagents.trust.approval.check_approval`` reads the raw event), or None when it can.

    The device accepts any approving reaction key of the trust core (skin tones
    included) and a message whose whole body is ``!approve <id>`` with the id exactly as
    the request shows it (no reply fallback, no lower case or look-alike letters). The
    bot counts only what the device will accept, so an approval never ends in
    rejected_approval.
    """
    if reaction_key is not None:
        return None
    if body is None:
        return None
    parsed = parse(strip_reply_fallback(body))
    if not isinstance(parsed, Command) or parsed.name != "approve":
        return None
    canonical = str(parsed.args["id"])
    if body.strip().split() != [APPROVE_COMMAND, canonical]:
        return (f"to approve, write exactly {APPROVE_COMMAND} {canonical} as a message of its own "
                "(not a reply): the device checks the text of the approval itself")
    return None


def sign_envelope(device_id: str, action: Dispatch, ttl_s: int) -> dict[str, Any]:
    """The envelope for ``action``, signed with the controller key (catalog ``envelope_sign``)."""
    signed: dict[str, Any] = api.call(
        "envelope_sign", caller=APP, device_id=device_id, capability=action.capability, args=action.args,
        ttl_s=ttl_s, approval=action.approval_event_id, request_id=action.request_id)
    return signed


def status_text(records: Mapping[str, DeviceRecord], statuses: Mapping[str, DeviceStatus],
                device: str | None, now: float) -> str:
    """The answer to ``!status``: one line per device (or the room's device)."""
    names = [device] if device else sorted(records)
    if not names:
        return "no devices known"
    lines = []
    for name in names:
        rec = records.get(name)
        if rec is None:
            lines.append(f"{name}: unknown device")
            continue
        if rec.revoked:
            mesh = "revoked"
        elif not rec.handshake_known:
            mesh = "mesh state unknown (no hub data)"
        elif rec.last_handshake is None:
            mesh = "no WireGuard handshake yet"
        else:
            mesh = f"last handshake {int(now - rec.last_handshake)} s ago"
        st = statuses.get(name)
        agent = f"agent {st.state} ({int(now - st.ts)} s ago)" if st else "agent never reported"
        serial = f"manifest serial {rec.manifest.serial}" if rec.manifest else "no manifest"
        lines.append(f"{name}: {mesh}; {agent}; {serial}")
    return "\n".join(lines)


class BotShell:
    def __init__(
        self,
        cfg: ShellConfig,
        *,
        directory: DeviceDirectory,
        hub: HubLike | None = None,
        store: DispatchStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.directory = directory
        self.hub = hub
        self.store = store or DispatchStore.open(cfg.store_path)
        self.clock = clock
        self.client = MatrixClient(cfg.client)
        self.core: BotCore | None = None
        self.approvals_room: str | None = None
        self.control: ControlApi | None = None
        self.control_bound: list[tuple[str, int]] = []
        self.statuses: dict[str, DeviceStatus] = {}
        self._rooms: dict[str, str] = {}  # room id -> device name
        self._room_of: dict[str, tuple[str, str | None]] = {}  # device -> (room id, alias)
        self._missing: dict[str, float] = {}  # device -> when a room look-up last failed
        self._invited: set[str] = set()  # device users invited to the approvals room
        self._lock = asyncio.Lock()
        self._directory_lock = asyncio.Lock()  # a push and a poll never map rooms at once
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: envelopes being signed and sent (see _run): kept so that none is dropped unawaited
        self._dispatching: set[asyncio.Task[None]] = set()
        #: The last dispatch task per device room: the next one waits for it, so envelopes
        #: for one device leave in the order the operator sent the commands.
        self._room_tail: dict[str, asyncio.Task[None]] = {}
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, wait: bool = True) -> None:
        await self.directory.refresh()
        self._update_operators()
        self.client.on_message(self._on_message)
        self.client.on_reaction(self._on_reaction)
        self.client.on_custom_event(RESULT_EVENT, self._on_result)
        self.client.on_custom_event(STATUS_EVENT, self._on_status)
        await self.client.start(wait=wait)
        self.approvals_room = await self._ensure_approvals_room()
        self.core = BotCore(
            bot_user_id=self.client.user_id,
            approvals_room_id=self.approvals_room,
            approvals=ApprovalBook(bot_user_id=self.client.user_id, ttl_s=self.cfg.approval_ttl_s),
            stale_after_s=self.cfg.stale_after_s,
            check=self._check,
            limiter=RateLimiter(per_minute=self.cfg.commands_per_minute, burst=self.cfg.command_burst),
        )
        orphans = self.store.expire_orphans(self.clock())
        self._ready.set()
        self._started = True
        if self.cfg.control_token:
            self.control = ControlApi(self, self.cfg.control_token)
            self.control_bound = await self.control.start(self.cfg.control_hosts, self.cfg.control_port)
        else:
            log.warning("no control API token: the control API is off")
        await self._map_rooms()
        self._tasks = [asyncio.create_task(self._poll_loop()), asyncio.create_task(self._tick_loop()),
                       asyncio.create_task(self._follow_hub())]
        if orphans:
            text = (f"bot restarted: {len(orphans)} request(s) a previous run left waiting expired "
                    f"(bot_restarted); nothing ran: {', '.join(orphans[:20])}")
            self._tasks.append(asyncio.create_task(self._quiet(self._notice(self.approvals_room, text))))

    async def stop(self) -> None:
        if self._dispatching:  # envelopes already decided go out before the client stops
            await asyncio.wait(set(self._dispatching), timeout=10)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.control is not None:
            await self.control.stop()
        await self.client.stop()
        self.store.close()

    async def _quiet(self, coro: Any) -> None:
        try:
            await coro
        except FnError as exc:
            log.error("%s: %s", exc.code, exc.message)

    # ------------------------------------------------------------------ rooms
    def _update_operators(self) -> None:
        """The client's trust policy and invite filter follow the manifests' approvers."""
        ops = set(self.cfg.operators)
        for rec in self.directory.devices().values():
            if rec.manifest is not None:
                ops.update(rec.manifest.approvers)
        wanted = tuple(sorted(ops))
        if wanted != self.client.config.operators:
            # ClientConfig is frozen; the client reads it on each decision, so a new copy is enough
            self.client.config = dataclasses.replace(self.client.config, operators=wanted)

    async def _ensure_approvals_room(self) -> str:
        alias = f"#{self.cfg.approvals_alias}:{self.cfg.server_name}"
        try:
            room_id = await self.client.resolve(alias)
        except FnError as exc:
            if exc.code != "room_not_found":
                raise
            ops = sorted(self.client.config.operators)
            # the creator needs 100 to set the initial state (encryption) in the same request
            levels = approvals_power_levels(ops, self.client.user_id)
            try:
                room_id = await self.client.create_room(
                    alias=self.cfg.approvals_alias, name="operator-approvals",
                    topic="approval requests and alerts from the bot", invite=ops, power_levels=levels)
                log.info("created %s (%s)", alias, room_id)
                return room_id
            except FnError as exc2:
                if exc2.code != "room_alias_taken":
                    raise
                room_id = await self.client.resolve(alias)
        await self.client.join(room_id)
        await self._lock_approvals_room(room_id)
        return room_id

    async def _lock_approvals_room(self, room_id: str) -> None:
        """A room made before devices were kept from posting (``events_default`` 0) is
        raised to today's levels; a failure is logged, the device's own check still holds."""
        nio_client = self.client.nio_client
        try:
            resp = await nio_client.room_get_state_event(room_id, "m.room.power_levels")
            current = getattr(resp, "content", None)
            if not isinstance(current, dict):
                log.warning("cannot read the power levels of the approvals room: %s", resp)
                return
            fixed = approvals_levels_fixed(current, sorted(self.client.config.operators), self.client.user_id)
            if fixed is None:
                return
            put = await nio_client.room_put_state(room_id, "m.room.power_levels", fixed)
            if getattr(put, "event_id", None):  # nio's RoomPutStateResponse (errors carry none)
                log.info("approvals room: devices may no longer post (events_default %d)",
                         fixed["events_default"])
            else:
                log.warning("cannot raise the approvals room's power levels: %s", put)
        except (TimeoutError, OSError) as exc:
            log.warning("cannot raise the approvals room's power levels: %s", exc)

    async def _map_rooms(self) -> None:
        """Find the room of each device the directory knows and the bot is not mapped to yet."""
        devices = self.directory.devices()
        now = time.monotonic()
        for name, rec in devices.items():
            if name in self._room_of or now - self._missing.get(name, -1e9) < _NEGATIVE_TTL_S:
                continue
            found = await self._find_room(name, rec)
            if found is None:
                self._missing[name] = now
                continue
            self._missing.pop(name, None)
            self._room_of[name] = found
            self._rooms[found[0]] = name
        await self._invite_devices(devices)

    async def _find_room(self, name: str, rec: DeviceRecord) -> tuple[str, str | None] | None:
        for prefix in ROOM_PREFIXES:
            alias = f"#{prefix}-{name}:{self.cfg.server_name}"
            try:
                room_id = await self.client.resolve(alias)
            except FnError:
                continue
            if room_id in self._rooms and self._rooms[room_id] != name:
                continue
            if room_id not in self.client.nio_client.rooms:
                try:
                    await self.client.join(room_id)
                except FnError as exc:
                    log.warning("cannot join %s for %s: %s", alias, name, exc.message)
                    continue
            return room_id, alias
        user = rec.matrix_user
        if user:
            for room_id, room in self.client.nio_client.rooms.items():
                if room_id != self.approvals_room and room_id not in self._rooms and user in room.users:
                    return room_id, room.canonical_alias
        return None

    async def _invite_devices(self, devices: Mapping[str, DeviceRecord]) -> None:
        """Device users read approvals in #operator-approvals: invite them (once)."""
        if self.approvals_room is None:
            return
        room = self.client.nio_client.rooms.get(self.approvals_room)
        if room is None:
            return
        for rec in devices.values():
            user = rec.matrix_user
            if not user or rec.revoked or user in self._invited:
                continue
            if user in room.users or user in room.invited_users:
                self._invited.add(user)
                continue
            resp = await self.client.nio_client.room_invite(self.approvals_room, user)
            if type(resp).__name__ == "RoomInviteResponse":
                self._invited.add(user)
            else:
                log.warning("cannot invite %s to the approvals room: %s", user, resp)

    def _is_operator(self, user: str) -> bool:
        return any(user in info.operators for info in self._infos().values())

    def _device_of_room(self, room_id: str) -> str | None:
        return self._rooms.get(room_id)

    def _infos(self) -> dict[str, DeviceInfo]:
        return {name: self._with_sandbox(rec.info()) for name, rec in self.directory.devices().items()}

    def _with_sandbox(self, info: DeviceInfo) -> DeviceInfo:
        st = self.statuses.get(info.name)
        return info if st is None or st.sandbox is None else dataclasses.replace(info, sandbox=st.sandbox)

    # ------------------------------------------------------------------ callbacks
    async def _on_message(self, ev: Incoming) -> None:
        trace.stamp("bot.received", ev.event_id)
        await self._ready.wait()
        carried = carried_result(ev.content)
        if carried is not None:  # a device's answer, carrying its result (bus.RESULT_KEY)
            await self._on_result(dataclasses.replace(ev, type=RESULT_EVENT, content=carried))
            return
        if ev.content.get("msgtype") not in ("m.text", None) or ev.body is None:
            return  # notices are what bots and agents write; never commands
        kind: RoomKind
        device: str | None
        if ev.room_id == self.approvals_room:
            kind, device = "approvals", None
            problem = device_checkable_vote(ev.body)
            if problem and self._is_operator(ev.sender):
                await self._notice(ev.room_id, problem, None, ev.event_id)
                return
        else:
            device = self._device_of_room(ev.room_id)
            if device is None:
                await self._map_rooms()
                device = self._device_of_room(ev.room_id)
            if device is None:
                return  # a room that is not a device room: not ours to answer
            kind = "device"
        attachment: str | None = None
        upload_problem: str | None = None
        target = reply_target(ev.content) if kind == "device" else None
        if target is not None and device is not None and upload_write_path(ev.body) is not None:
            attachment, upload_problem = await self._upload_arg(ev, target, device)
        msg = Message(ev.room_id, kind, device, ev.sender, ev.event_id, ev.body, self.clock(),
                      ev.verified, ev.decrypted, trust=ev.trust,
                      attachment=attachment, attachment_problem=upload_problem)
        async with self._lock:
            assert self.core is not None
            await self._run(self.core.on_message(msg, self._infos()))

    async def _upload_arg(self, ev: Incoming, target: str, device: str) -> tuple[str | None, str | None]:
        """(the signed file argument for the upload ``target``, or why there is none).

        The bot reads the file only to learn its SHA-256 and size for the envelope and
        the approval request; the device downloads and checks it again (uploads.py)."""
        rec = self.directory.devices().get(device)
        cap = rec.manifest.capability("fs.write") if rec and rec.manifest else None
        limit = cap.texts.get("content", DEFAULT_WRITE_BYTES) if cap else DEFAULT_WRITE_BYTES
        try:
            upload = await self.client.get_event(ev.room_id, target)
            if upload.sender != ev.sender:
                raise FnError("file_not_yours", "reply to a file you uploaded yourself")
            if not upload.verified:
                raise FnError("file_unverified", "the file came from a session that is not verified")
            ref, name, declared = attachments.file_of_event(upload.content)
            if declared is not None and declared > limit:
                raise FnError("attachment_too_large", f"{name} is {declared} bytes; fs.write allows {limit}")
            data = await attachments.fetch_file(self.client, ref, max_bytes=limit)
        except FnError as exc:
            return None, f"{exc.code}: {exc.message}"
        return attachments.FileArg(ref, attachments.sha256_hex(data), len(data), name).to_arg(), None

    async def _on_reaction(self, ev: Incoming) -> None:
        trace.stamp("bot.reaction", ev.relates_to)  # keyed by the approval request's event
        await self._ready.wait()
        if ev.room_id != self.approvals_room or ev.relates_to is None or ev.reaction_key is None:
            return
        problem = device_checkable_vote(reaction_key=ev.reaction_key)
        if problem and self._is_operator(ev.sender):
            await self._notice(ev.room_id, problem, None, ev.relates_to)
            return
        reaction = Reaction(ev.sender, ev.reaction_key, ev.relates_to, ev.event_id, self.clock(), ev.verified,
                            ev.decrypted)
        async with self._lock:
            assert self.core is not None
            await self._run(self.core.on_reaction(reaction, self._infos()))

    def _own_device(self, ev: Incoming) -> str | None:
        """The device whose own Matrix user sent ``ev`` in its own room, else None."""
        device = self._device_of_room(ev.room_id)
        rec = self.directory.devices().get(device) if device else None
        if rec is None or rec.matrix_user != ev.sender:
            if device is not None:
                log.warning("ignoring %s from %s in %s's room", ev.type, ev.sender, device)
            return None
        return rec.name

    async def _on_result(self, ev: Incoming) -> None:
        """A device's result: the content of a ``RESULT_EVENT`` (older agents) or the one its
        answer carries; only from the device's own Matrix user in its own room."""
        await self._ready.wait()
        device = self._own_device(ev)
        if device is None:
            return
        result = result_from_content(ev.content, device, self.clock())
        if result is None:
            log.warning("malformed result from %s: %s", device, ev.event_id)
            return
        trace.stamp("bot.result", result.request_id)
        async with self._lock:
            assert self.core is not None
            await self._run(self.core.on_device_result(result))

    async def _on_status(self, ev: Incoming) -> None:
        device = self._own_device(ev)
        status = StatusEvent.from_content(ev.content)
        if device is None or status is None:
            return
        at = status.at_s if status.at_s is not None else self.clock()
        self.statuses[device] = DeviceStatus(status.state[:16], min(at, self.clock()), status.sandbox)

    # ------------------------------------------------------------------ loops
    async def _poll_loop(self) -> None:
        while True:
            # pushed changes arrive through _follow_hub; then this is only a safety net
            streaming = bool(getattr(self.directory, "streaming", False))
            await asyncio.sleep(self.cfg.stream_poll_s if streaming else self.cfg.poll_s)
            try:
                await self.directory.refresh()
                await self._directory_changed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("directory poll failed")

    async def _follow_hub(self) -> None:
        follow = getattr(self.directory, "follow", None)
        if follow is not None:
            await follow(self._directory_changed)

    async def _directory_changed(self) -> None:
        """After the directory changed (a push or a poll): operators, rooms, stale alerts."""
        async with self._directory_lock:
            self._update_operators()
            await self._map_rooms()
            records = self.directory.devices()
            handshakes = {n: r.last_handshake for n, r in records.items()
                          if r.handshake_known and not r.revoked}
            async with self._lock:
                assert self.core is not None
                await self._run(self.core.check_stale(handshakes, self.clock()))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.tick_s)
            try:
                async with self._lock:
                    assert self.core is not None
                    now = self.clock()
                    await self._run(self.core.tick(now))
                    self.core.forget(now - FORGET_AFTER_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tick failed")

    # ------------------------------------------------------------------ actions
    async def _run(self, actions: list[Action]) -> None:
        """Carry out the core's actions in order; one failing does not stop the others.

        A Dispatch (sign, send the envelope, mark it sent) runs as a task of its own: its
        send took the Matrix sync loop and the core's lock with it, so under load every
        later command and result waited behind each envelope's send, in series (bench_load's
        waterfall: 4.5 s from the operator's send to the bot at 5 commands/s). The core
        decided before the task starts; the task touches only the store and the homeserver.
        Tasks for one room run in order (each waits for the one before), so two commands to
        one device reach it in the order they were sent; different devices do not wait.
        The Dispatch tasks start before the other actions of the same list are sent: an
        approval's two notices ("approved ... by", "...; sending") came first and the
        envelope waited for both sends (bench_e2e's approval waterfall: ~0.9 s of 1.4 s
        from the 👍 to the bot's decision, at load 11). Those notices then wait for the
        envelope's send (a task of their own): sent beside it, they competed with it in the
        homeserver and the envelope took twice a command's (``bot.sent`` 73 vs 31 ms p50).
        """
        dispatched: list[asyncio.Task[None]] = []
        for action in actions:
            if isinstance(action, Dispatch):
                before = self._room_tail.get(action.room_id)
                task = asyncio.create_task(self._dispatch_after(before, action))
                self._room_tail[action.room_id] = task
                self._track(task)
                task.add_done_callback(functools.partial(self._forget_tail, action.room_id))
                dispatched.append(task)
        deferred: list[Action] = []
        for action in actions:
            if isinstance(action, Dispatch):
                continue
            if dispatched and isinstance(action, Reply):
                deferred.append(action)  # courtesy notices: after the envelope is out
                continue
            await self._do_logged(action)
        if deferred:
            self._track(asyncio.create_task(self._after(dispatched, deferred)))

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keep ``task`` until it ends (``stop`` waits for these)."""
        self._dispatching.add(task)
        task.add_done_callback(self._dispatching.discard)

    async def _after(self, tasks: list[asyncio.Task[None]], actions: list[Action]) -> None:
        await asyncio.wait(tasks)  # their outcome is their own (logged there)
        for action in actions:
            try:
                await self._do_logged(action)
            except Exception:  # a task's exception would otherwise surface only at garbage collection
                log.exception("%s failed", type(action).__name__)

    async def _do_logged(self, action: Action) -> None:
        try:
            await self._do(action)
        except FnError as exc:
            log.error("%s failed: %s (%s)", type(action).__name__, exc.message, exc.code)

    def _forget_tail(self, room_id: str, done: asyncio.Task[None]) -> None:
        if self._room_tail.get(room_id) is done:
            del self._room_tail[room_id]

    async def _dispatch_after(self, before: asyncio.Task[None] | None, action: Dispatch) -> None:
        if before is not None:
            await asyncio.wait({before})  # its outcome is its own (logged there); only the order matters
        await self._dispatch_logged(action)

    async def _dispatch_logged(self, action: Dispatch) -> None:
        try:
            await self._dispatch(action)
        except FnError as exc:
            log.error("Dispatch failed: %s (%s)", exc.message, exc.code)
        except Exception:  # a task's exception would otherwise surface only at garbage collection
            log.exception("Dispatch %s failed", action.request_id)

    async def _do(self, action: Action) -> None:
        match action:
            case Reply(unencrypted=True):
                # see unverified.py: the only answer a session without our room key can read
                await self.client.send_notice(action.room_id, action.text, action.html or None,
                                              action.reply_to, encrypted=False)
            case Reply():
                await self._notice(action.room_id, action.text, action.html, action.reply_to)
            case RecordDispatch():
                self.store.record(request_id=action.request_id, room_id=action.room_id, sender=action.sender,
                                  command=action.command, capability=action.capability, args=action.args,
                                  now=action.now, device=action.device,
                                  command_event_id=action.command_event_id, status=action.status,
                                  reason=action.reason)
            case SetDispatchStatus():
                self.store.set_status(action.request_id, action.status, now=action.now, reason=action.reason,
                                      approval_id=action.approval_id,
                                      approval_event_id=action.approval_event_id)
            case PostApprovalRequest():
                await self._post_approval(action)
            case Dispatch():
                await self._dispatch(action)
            case Revoke():
                await self._revoke(action)
            case StatusQuery():
                text = status_text(self.directory.devices(), self.statuses, action.device, self.clock())
                await self._notice(action.room_id, text, None, action.reply_to)

    async def _notice(self, room: str, text: str, html: str | None = None,
                      reply_to: str | None = None) -> str:
        return await self.client.send_notice(room, text, html or None, reply_to)

    async def _post_approval(self, action: PostApprovalRequest) -> None:
        assert self.core is not None and self.approvals_room is not None
        # With a binding, the text is re-rendered by the device from its envelope: exactly that is posted.
        content = approval_request(action.binding, action.args, device=action.data.get("device"),
                                   text=action.text)
        event_id = await self.client.send_custom(self.approvals_room, "m.room.message", content)
        self.core.posted(action.approval_id, event_id)

    def _check(self, info: DeviceInfo, capability: str, args: dict[str, Any]) -> str | None:
        """The trust core's decision on the signed manifest (lexical paths: not our disk)."""
        rec = self.directory.devices().get(info.name)
        if rec is None or rec.manifest is None:
            return "no manifest is known for this device"
        d = decide(rec.manifest, capability, args, now=int(self.clock()), resolve=False)
        return None if d.allowed else f"{d.code}: {d.reason}"

    async def _dispatch(self, action: Dispatch) -> None:
        now = self.clock()
        rec = self.directory.devices().get(action.device)
        if rec is not None and rec.revoked:
            self.store.set_status(action.request_id, "peer_revoked", now=now, reason="device revoked")
            await self._notice(action.room_id, f"peer_revoked: {action.device} is revoked; nothing was sent",
                               None, action.reply_to)
            return
        info = rec.info() if rec else DeviceInfo(action.device, {})
        refusal = self._check(info, action.capability, action.args)
        if refusal is not None or rec is None:
            self.store.set_status(action.request_id, "error", now=now, reason=refusal)
            await self._notice(action.room_id, f"not sent: {refusal}", None, action.reply_to)
            return
        trace.stamp("bot.decided", action.request_id, event=action.reply_to)
        signed = await asyncio.to_thread(sign_envelope, rec.device_id, action, self.cfg.envelope_ttl_s)
        trace.stamp("bot.signed", action.request_id)
        content = EnvelopeEvent(signed, action.reply_to, action.approval_request_event).to_content()
        await self.client.send_custom(action.room_id, ENVELOPE_EVENT, content)
        trace.stamp("bot.sent", action.request_id)
        self.store.set_status(action.request_id, "sent", now=self.clock(),
                              approval_event_id=action.approval_event_id)

    async def _revoke(self, action: Revoke) -> None:
        assert self.approvals_room is not None
        if self.hub is None:
            await self._notice(self.approvals_room, f"cannot revoke {action.device}: no hub is configured",
                               None, action.reply_to)
            return
        try:
            await self.hub.revoke(action.device)
        except FnError as exc:
            text = f"revoke of {action.device} failed: {exc.code}: {exc.message}"
            await self._notice(self.approvals_room, text, None, action.reply_to)
            return
        self.directory.mark_revoked(action.device)
        rec = self.directory.devices().get(action.device)
        user = rec.matrix_user if rec else None
        kicked = []
        if user:
            rooms = [r for r in (self._room_of.get(action.device, (None, None))[0], self.approvals_room) if r]
            for room in rooms:
                try:
                    await self.client.kick(room, user, reason="device revoked")
                    kicked.append(room)
                except FnError as exc:
                    log.warning("kick %s from %s: %s", user, room, exc.message)
        text = f"revoked {action.device} (requested by {action.requested_by})"
        if kicked:
            text += f"; {user} removed from {len(kicked)} room(s)"
        await self._notice(self.approvals_room, text, None, action.reply_to)

    # ------------------------------------------------------------------ control API
    def pending_identities(self) -> dict[str, str]:
        """Operators whose new master key waits for ``./fn operator trust-matrix-identity``."""
        return dict(self.client.pending_identities)

    def health(self) -> str:
        if not self._started:
            return "starting"
        err = getattr(self.directory, "last_error", None)
        return "ok" if self.client.state == "ok" and not err else "degraded"

    def approvals(self) -> list[dict[str, Any]]:
        if self.core is None or self.approvals_room is None:
            return []
        core = self.core
        ids = {r.id: rid for r in core.book.all() if (rid := core.request_id_of(r.id)) is not None}
        return approval_rows(core.book.all(), ids, self.approvals_room)

    def devices_listing(self) -> list[dict[str, Any]]:
        return device_rows(self._room_of, self.statuses, now=self.clock())

    async def deny(self, approval_id: str) -> str:
        if self.core is None:
            return "not_found"
        approval_id = normalize_request_id(approval_id) or approval_id
        async with self._lock:
            outcome, actions = self.core.deny_from_dashboard(approval_id, self.clock())
            await self._run(actions)
        return outcome
