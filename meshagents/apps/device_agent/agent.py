"""The Matrix shell of the device agent: a Matrix user in its own room, read-only in
``#operator-approvals``, running envelopes through :class:`Pipeline`.

    agent = DeviceAgent(config)
    await agent.start()        # login (retrying while the homeserver is down), join rooms,
                               # status event, notice about interrupted requests, tasks
    await agent.run_forever()  # until stop()
    await agent.stop()
    agent.state                # "ok" | "degraded" (homeserver or mesh unreachable)

Each ``org.meshagents.envelope`` event in the device room is handled in its own task
(at most ``max_concurrent`` at once, so a long command never blocks the sync loop; at
most ``max_queue`` waiting or running, beyond which an envelope is answered at once
with ``error`` / ``queue_full`` and nothing runs — its nonce is not spent):
approval events fetched from the approvals room when the envelope names one, then
the pipeline's checks, then intent → run (worker thread) → outcome, then a result
event and an ``m.notice`` replying to the operator's command. The chain head is
signed into the local checkpoint file (``sealing.py``) every ``checkpoint_every``
entries, every ``checkpoint_interval_s`` and at a clean stop. Replies that cannot be
sent (homeserver down) are retried with backoff. The client base records an event id
before handling it, so after a crash nothing is handled twice; the nonce store is the
second lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import replace
from typing import Any

import httpx

from meshagents import readymark as ready
from meshagents import tls, trace
from meshagents.apps.device_agent import attach, capabilities, live, prearm, renewal, replies, sandbox, upload
from meshagents.apps.device_agent.capabilities.base import CapResult, Context
from meshagents.apps.device_agent.config import AgentConfig
from meshagents.apps.device_agent.pipeline import ApprovalEvents, Outcome, Pipeline, Verdict, approval_ids
from meshagents.apps.device_agent.sealing import Sealer
from meshagents.apps.device_agent.shipping import Shipper
from meshagents.bus import ENVELOPE_EVENT, RESULT_KEY, ROTATION_EVENT, STATUS_EVENT
from meshagents.errors import FnError
from meshagents.matrix import attachments
from meshagents.matrix.client import ClientConfig, Incoming, MatrixClient
from meshagents.matrix.fetch import FetchedEvent, fetch_event
from meshagents.matrix.history import events_between
from meshagents.matrix.rooms import message_content
from meshagents.retry import Backoff
from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore, load_signing_key, open_keystore
from meshagents.trust.models import AuditEntry

log = logging.getLogger("meshagents.device_agent")
INTERRUPTED_LISTED = 50  # the restart notice names this many interrupted requests (64 KiB event cap)


def client_config(config: AgentConfig, operators: tuple[str, ...], **overrides: Any) -> ClientConfig:
    kw: dict[str, Any] = {
        "homeserver": config.homeserver,
        "user_id": config.matrix_user,
        "password": config.matrix_password,
        "store_dir": config.store_dir,
        "operators": operators,
        "device_name": f"device_agent {config.device_name}",
        "accept_invites_from": config.bot_users,
        # an operator-signed statement confirms the operator's new Matrix identity (a reset)
        "identity_keys": lambda: (config.operator_key,),
        # It reads none of its own events and changes no room state after joining: its own
        # answer no longer wakes its sync (one sync less per command; docs/BENCHMARKS.md).
        "sync_own_events": False,
    }
    kw.update(overrides)
    return ClientConfig(**kw)


def _request_id(content: Any) -> str | None:
    """The envelope's request id, unverified: only a trace key."""
    env = content.get("envelope") if isinstance(content, dict) else None
    rid = env.get("request_id") if isinstance(env, dict) else None
    return rid if isinstance(rid, str) else None


def require_sandbox(config: AgentConfig) -> None:
    """Refuse to run (``sandbox_unavailable``) where the hardened sandbox cannot start,
    unless the config says ``"sandbox": "weak"``: never a silent downgrade."""
    if not config.sandbox:
        log.warning("sandbox: weak (configured): commands run WITHOUT isolation on this device")
        return
    why = sandbox.probe()
    if why is not None:
        raise FnError(
            "sandbox_unavailable",
            f"{why}; install bubblewrap, or set \"sandbox\": \"weak\" in the config to run "
            "commands without isolation (the device is then shown as unsandboxed)",
        )


class DeviceAgent:
    def __init__(self, config: AgentConfig, **client_overrides: Any) -> None:
        self.config = config
        self.pipeline = Pipeline(config)
        try:
            m = self.pipeline.manifest()
            # The bot's devices are judged by the same cross-signing rule as operators':
            # an approval request R counts only from a bot user's verified device.
            operators = tuple(dict.fromkeys([*m.approvers, *m.bot_users]))
        except FnError as exc:
            log.error("manifest not usable (%s); every request will be refused", exc)
            operators = ()
        self.client = MatrixClient(client_config(config, operators, **client_overrides))
        self.client.on_custom_event(ENVELOPE_EVENT, self._on_envelope)
        self.client.on_custom_event(ROTATION_EVENT, self._on_rotation)
        self.ctx = Context(
            sandbox=config.sandbox,
            docker_host=config.docker_host,
            snapshots_dir=config.snapshots_dir,
            hidden=config.protected_paths(),
        )
        self.shipper = Shipper(config, self.pipeline.audit, self._device_key)
        self.sealer = Sealer(config, self.pipeline.audit, self.pipeline.manifest, self._device_key)
        self._sem = asyncio.Semaphore(config.max_concurrent)
        self._queued = 0  # envelopes accepted into the queue and not finished
        self._tasks: set[asyncio.Task[Any]] = set()
        self._room_id: str | None = None
        self._approvals_id: str | None = None
        self._state = "degraded"
        self._posted_state: str | None = None
        self._unposted = True
        self._problems: list[str] = []
        self._outage = ""
        self._detail = "starting"
        self._stopped = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._early: list[Incoming] = []
        self._refused_manifests: set[str] = set()
        self._running: dict[str, live.Running] = {}  # request id -> while it runs (live.py)
        self._live_tasks: dict[str, asyncio.Task[Any]] = {}
        #: request id -> monotonic send times of its live message and edits (the last 64 requests)
        self.live_edits: dict[str, list[float]] = {}
        self.handled = 0
        self._prearmed = False

    # ------------------------------------------------------------------ lifecycle
    async def _join_once_invited(self, room: str, deadline: float | None) -> str:
        """Join ``room``, waiting for the invite if it has not come yet. The hub invites a new
        device into its own room when it makes it, but the bot invites device users into
        #operator-approvals only once it has seen the device (on its next tick), which can
        come after the agent's first start: waiting (with backoff, until ``deadline``) is
        what an operator expects, not a failed start and a restart loop."""
        backoff = Backoff(0.5, 5.0)
        warned = False
        while True:
            try:
                return await self.client.join(room)
            except FnError as exc:
                if exc.code != "matrix_join_failed" or self._stop_requested.is_set() or (
                    deadline is not None and time.monotonic() > deadline
                ):
                    raise
                if not warned:
                    log.warning("cannot join %s yet (%s); waiting for the invite", room, exc.message)
                    warned = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), backoff.next())

    @property
    def state(self) -> str:
        return self._state

    def _device_key(self) -> Any:
        store = (
            FileKeyStore(self.config.keys_dir)
            if self.config.keys_dir
            else open_keystore(self.config.keystore)
        )
        return load_signing_key(DEVICE_KEY, store)

    async def start(self, *, start_timeout: float | None = None) -> None:
        require_sandbox(self.config)
        ready.clear(self.config.data_dir)  # an earlier start's marker must not count for this one
        deadline = None if start_timeout is None else time.monotonic() + start_timeout
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await self.client.start()
                break
            except FnError as exc:
                if exc.code != "homeserver_unreachable" or (
                    deadline is not None and time.monotonic() > deadline
                ):
                    raise
                delay = backoff.next()
                log.warning("homeserver unreachable at start (%s); retrying in %.1f s", exc.message, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                if self._stop_requested.is_set():
                    raise FnError("agent_stopped", "stopped before the homeserver answered") from exc
        self._room_id = await self.client.join(self.config.device_room)
        self._approvals_id = await self._join_once_invited(self.config.approvals_room, deadline)
        early, self._early = self._early, []
        for ev in early:
            await (self._on_rotation if ev.type == ROTATION_EVENT else self._on_envelope)(ev)
        await self._check_health()
        interrupted = self.pipeline.interrupted()
        if interrupted:
            self._spawn(self._announce_interrupted(interrupted))
        self._spawn(self._health_loop())
        self._spawn(self.sealer.run())
        if self.config.hub_url:
            self._spawn(self.shipper.run())
            self._spawn(self._manifest_loop())
        if self.config.sandbox and not self._prearmed:
            prearm.enable()  # the next command's sandbox starts in a cgroup joined ahead (prearm.py)
            self._prearmed = True
        self._mark_ready()

    async def _announce_interrupted(self, found: list[AuditEntry]) -> None:
        """Tell the room which requests the last stop interrupted (never run again). Only a
        sent notice marks them reported: a send the homeserver refuses or drops is tried
        again with backoff, and a stop before it succeeds leaves them to the next start."""
        assert self._room_id is not None
        lines = [f"- {e.request_id} ({e.capability}), intent at audit seq {e.seq}" for e in found]
        body = "The agent restarted; these requests were interrupted while running and were NOT run again:\n"
        body += "\n".join(lines[:INTERRUPTED_LISTED])
        if len(lines) > INTERRUPTED_LISTED:
            body += f"\n- and {len(lines) - INTERRUPTED_LISTED} more (the audit log lists them all)"
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await self.client.send_notice(self._room_id, body)
                break
            except FnError as exc:
                delay = backoff.next()
                log.warning("could not announce %d interrupted request(s) (%s); retrying in %.1f s",
                            len(found), exc.code, delay)
                await asyncio.sleep(delay)
        self.pipeline.mark_interrupted(found)

    def _mark_ready(self) -> None:
        """Logged in, keys on the server, both rooms joined: say so (enrollment waits for it)."""
        try:
            ready.write(
                self.config.data_dir,
                pid=os.getpid(),
                device_id=self.config.device_id,
                device_room=self._room_id,
                approvals_room=self._approvals_id,
                matrix_device=self.client.device_id,
                state=self._state,
            )
        except OSError as exc:  # the agent serves anyway; only a waiting enroll would time out
            log.warning("could not write the ready marker in %s: %s", self.config.data_dir, exc)

    def request_stop(self) -> None:
        """Ask ``run_forever`` to return (a signal handler may call this)."""
        self._stop_requested.set()

    async def run_forever(self) -> None:
        await self._stop_requested.wait()

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._stop_requested.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:  # a clean stop signs the head: a tail cut after it is then visible locally
            self.sealer.seal()
        except (FnError, OSError) as exc:
            log.warning("audit checkpoint at stop failed: %s", exc)
        ready.clear(self.config.data_dir)
        if self._prearmed:
            prearm.disable()
            self._prearmed = False
        await self.client.stop()
        self.pipeline.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ health
    async def _mesh_ok(self) -> tuple[bool, str]:
        if not self.config.hub_url:
            return True, ""
        try:
            async with httpx.AsyncClient(timeout=3.0, verify=tls.context()) as http:
                resp = await http.get(f"{self.config.hub_url}/healthz")
            return resp.status_code < 500, f"hub answered {resp.status_code}"
        except httpx.HTTPError as exc:
            return False, f"hub unreachable over the mesh ({type(exc).__name__})"

    async def _check_health(self) -> None:
        mesh_ok, mesh_detail = await self._mesh_ok()
        matrix_ok = self.client.state == "ok"
        problems = [p for ok, p in ((matrix_ok, "homeserver unreachable"), (mesh_ok, mesh_detail)) if not ok]
        state = "ok" if not problems else "degraded"
        if state != self._state or (problems and problems != self._problems):
            if state != self._state:
                log.warning("state %s -> %s (%s)", self._state, state, "; ".join(problems) or "all links up")
            self._unposted = True  # a change the room has not heard of (maybe it could not)
            if problems:
                self._outage = "; ".join(problems)
        self._state, self._problems = state, problems
        self._detail = "; ".join(problems) or (
            f"all links up (back after: {self._outage})" if self._outage else "all links up"
        )
        if self._unposted and self._room_id is not None and self.client.state == "ok":
            try:
                await self.client.send_custom(
                    self._room_id,
                    STATUS_EVENT,
                    replies.status_content(
                        self.config.device_id, self._state, self._detail, sandbox=self.config.sandbox_mode
                    ),
                )
                self._posted_state = self._state
                self._unposted = False
                if state == "ok":
                    self._outage = ""
                log.info("status %s: %s", self._state, self._detail)
            except FnError as exc:
                log.warning("could not post status (%s)", exc)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s if self._state == "ok" else 1.0)
            with contextlib.suppress(Exception):
                await self._check_health()

    # ------------------------------------------------------------------ re-issued manifests
    async def check_manifest(self, http: httpx.AsyncClient) -> renewal.Renewal | None:
        """Pick up a re-issued manifest from the hub; the room hears of it either way (renewal.py)."""
        try:
            got = await renewal.poll_once(self.pipeline, http, self._refused_manifests)
        except httpx.HTTPError:
            return None  # the mesh is down: the health loop says so
        except FnError as exc:
            log.warning("re-issued manifest refused: %s", exc)
            if self._room_id is not None:
                with contextlib.suppress(FnError):
                    await self.client.send_notice(
                        self._room_id, f"manifest refused: {exc.code}: {exc.message}"
                    )
            return None
        if got is not None:
            # whose verified devices count follows the manifest's approvers (checked again per approval)
            self.client.config = replace(
                self.client.config, operators=tuple(self.pipeline.manifest().approvers)
            )
            log.info("%s (audit seq %s)", got.notice(), got.audit_seq)
            if self._room_id is not None:
                with contextlib.suppress(FnError):
                    await self.client.send_notice(
                        self._room_id, f"{got.notice()} (audit seq {got.audit_seq})"
                    )
        return got

    async def _manifest_loop(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                await asyncio.sleep(self.config.manifest_poll_s)
                with contextlib.suppress(Exception):
                    await self.check_manifest(http)

    # ------------------------------------------------------------------ envelopes
    def _our_room(self, ev: Incoming) -> str | None:
        """Our room's id when ``ev`` is an event of it to handle now, else None. The client's
        first sync runs before we know our room id (the config may name an alias): such events
        are kept until start() has joined, never dropped; events of other rooms are ignored."""
        if self._room_id is None:
            self._early.append(ev)
            return None
        return self._room_id if ev.room_id == self._room_id else None

    async def _on_envelope(self, ev: Incoming) -> None:
        if self._our_room(ev) is None:
            return
        env = ev.content.get("envelope")
        rid = env.get("request_id") if isinstance(env, dict) else None
        trace.stamp("agent.received", rid if isinstance(rid, str) else None)
        log.info("envelope %s from %s (event %s)", rid, ev.sender, ev.event_id)
        if self._queued >= self.config.max_queue:
            reason = (
                f"queue_full: {self._queued} requests are waiting or running "
                f"(at most {self.config.max_queue}); nothing was run, send it again later"
            )
            log.warning("request %s refused: %s", rid, reason)
            self._spawn(self._reply(self.pipeline.error_outcome(ev.content, reason)))
            return
        self._queued += 1
        self._spawn(self._handle(ev.content))

    def _follow_manifest_users(self) -> None:
        """Whose devices the Matrix layer judges (approvers and bots) follows a renewed manifest."""
        try:
            m = self.pipeline.manifest()
        except FnError:
            return
        wanted = tuple(dict.fromkeys([*m.approvers, *m.bot_users]))
        if wanted != self.client.config.operators:
            # ClientConfig is frozen; the client reads it on each decision, so a new copy is enough
            self.client.config = dataclasses.replace(self.client.config, operators=wanted)

    async def _on_rotation(self, ev: Incoming) -> None:
        """An operator-key rotation statement (and the re-signed manifest) in our room."""
        room_id = self._our_room(ev)
        if room_id is None:
            return
        result = await asyncio.to_thread(self.pipeline.accept_rotation, ev.content)
        self._follow_manifest_users()
        if result.status == "ok":
            text = f"rotation accepted: {result.reason}"
            log.info(text)
        else:
            text = f"rotation refused: {result.status}: {result.reason}"
            log.warning(text)
        with contextlib.suppress(FnError):
            await self.client.send_notice(room_id, text, reply_to=ev.event_id)

    async def _approvals(self, content: Any) -> ApprovalEvents | None:
        a_id, r_hint = approval_ids(content)
        if a_id is None or self._approvals_id is None:
            return None
        room = self._approvals_id
        # A, R and the events between them are three reads of the homeserver. With the
        # envelope's hint for R they go out at once (in series they were three round trips
        # on the approval's critical path, bench_e2e); R and the gap are only used when A
        # itself names that same R, otherwise they are read again for the R that A names.
        guess: asyncio.Future[tuple[FetchedEvent | None, list[dict[str, Any]] | None]] | None = None
        if r_hint:
            guess = asyncio.ensure_future(self._request_and_gap(room, r_hint, a_id))
            guess.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "not retrieved"
        try:
            try:
                a = await fetch_event(self.client, room, a_id)
            except BaseException:
                if guess is not None:
                    guess.cancel()
                raise
            if a is None:
                if guess is not None:
                    guess.cancel()
                return ApprovalEvents(problem=f"{a_id} is not an event of the approvals room")
            r_id = r_hint
            rel = a.content.get("m.relates_to")
            if a.type == "m.reaction" and isinstance(rel, dict) and isinstance(rel.get("event_id"), str):
                r_id = rel["event_id"]
            if guess is not None and r_id == r_hint:
                r, between = await guess
            else:
                if guess is not None:
                    guess.cancel()
                r, between = await self._request_and_gap(room, r_id, a_id) if r_id else (None, None)
        except FnError as exc:
            return ApprovalEvents(problem=f"cannot fetch the approval: {exc.message}")
        except Exception as exc:  # any failure to look it up refuses; it never crashes the agent
            return ApprovalEvents(problem=f"cannot fetch the approval: {type(exc).__name__}")
        return ApprovalEvents(
            approval=a.as_bus_dict(),
            approval_verified=a.verified and a.decrypted,
            request=r.as_bus_dict() if r is not None else None,
            request_verified=r is not None and r.verified and r.decrypted,
            between=between,
            problem=(
                "the approval request event was not found"
                if r is None
                else "" if between is not None else "the approval does not follow its request in the room"
            ),
        )

    async def _request_and_gap(
        self, room: str, r_id: str, a_id: str
    ) -> tuple[FetchedEvent | None, list[dict[str, Any]] | None]:
        """(R, the events between R and A), read at once; the gap counts only when R exists."""
        r, between = await asyncio.gather(
            fetch_event(self.client, room, r_id),
            events_between(self.client, room, r_id, a_id),
            return_exceptions=True,
        )
        if isinstance(r, BaseException):
            raise r
        if r is None:
            return None, None
        if isinstance(between, BaseException):
            raise between
        return r, between

    async def handle(self, content: Any) -> Outcome:
        """Run one envelope event content end to end (also used by tests)."""
        async with self._sem:
            self._follow_manifest_users()
            approvals = await self._approvals(content)
            if approvals is not None:
                trace.stamp("agent.approvals", _request_id(content))
            verdict = self.pipeline.check(content, approvals)
            trace.stamp("agent.verified", verdict.request_id)
            if verdict.ok:
                verdict = self.pipeline.begin(verdict)
                trace.stamp("agent.intent", verdict.request_id)
            if not verdict.ok:
                if verdict.audit_seq is None:
                    verdict = self.pipeline.refuse(verdict)
                outcome = self.pipeline.refused_outcome(verdict)
            else:
                t0 = time.monotonic()
                run = self._track(verdict)
                def on_start(kill: Any, run: live.Running = run) -> None:
                    trace.stamp("agent.started", run.request_id)
                    run.on_start(kill)

                ctx = replace(self.ctx, on_output=run.feed, on_start=on_start,
                              cancel=lambda target: self._cancel(target, verdict.request_id))
                try:
                    fetched = await upload.fetch(self.client, verdict) if upload.wanted(verdict) else None
                    if isinstance(fetched, CapResult):
                        result = fetched  # the file is not the signed one: nothing is written
                    else:
                        result = await asyncio.to_thread(self.pipeline.execute, verdict, ctx, fetched)
                finally:
                    trace.stamp("agent.exited", verdict.request_id)
                    run.finished.set()
                    await self._settle(run)
                if run.cancelled_by is not None:
                    result = replace(result, status="error", detail="cancelled",
                                     output=result.output + f"\n[cancelled by request {run.cancelled_by}]\n")
                outcome = self.pipeline.finish(verdict, result, int((time.monotonic() - t0) * 1000))
                trace.stamp("agent.outcome", verdict.request_id)
        self.handled += 1
        try:
            self.sealer.maybe()
        except (FnError, OSError) as exc:
            log.warning("audit checkpoint failed: %s", exc)
        return outcome

    # ------------------------------------------------------------------ live output, cancel
    def _track(self, verdict: Verdict) -> live.Running:
        cap = verdict.decision.capability if verdict.decision else None
        run = live.Running(
            verdict.request_id, verdict.capability, verdict.reply_to, time.monotonic(),
            asyncio.get_running_loop(),
            cancellable=cap is not None and capabilities.cancellable(cap),
        )
        self._running[run.request_id] = run
        self._live_tasks[run.request_id] = self._spawn(self._live(run))
        return run

    async def _settle(self, run: live.Running) -> None:
        """After the run: the live loop has ended (a live message in flight is sent); only
        a request with a live message stays tracked, for its final edit in ``_reply``."""
        task = self._live_tasks.pop(run.request_id, None)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if run.event_id is None:
            self._running.pop(run.request_id, None)
            if run.edit_times:
                self.live_edits[run.request_id] = run.edit_times

    def _cancel(self, target: str, by: str) -> CapResult:
        """``control.cancel`` (runs in the worker thread of that request)."""
        run = self._running.get(target)
        if run is None or run.finished.is_set():
            return CapResult("error", f"not_running: {target} is not running here\n", detail="not_running")
        if not run.cancel(by):
            return CapResult("error", f"not_cancellable: {target} ({run.capability}) runs no process\n",
                             detail="not_cancellable")
        return CapResult("ok", f"cancelled {target} ({run.capability})\n", 0, detail="cancelled")

    async def _typing(self, on: bool) -> None:
        if self._room_id is None:
            return
        with contextlib.suppress(Exception):  # typing is a courtesy: never fail a request on it
            await self.client.nio_client.room_typing(self._room_id, on, timeout=live.TYPING_TIMEOUT_MS)

    async def _first(self, *events: asyncio.Event, timeout: float) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _throttled(self, run: live.Running) -> bool:
        """Wait until the next edit is allowed; False when the request ended meanwhile."""
        while (delay := run.throttle.wait_s(time.monotonic())) > 0:
            await self._first(run.finished, timeout=delay)
            if run.finished.is_set():
                return False
        return True

    async def _live(self, run: live.Running) -> None:
        """The live message of ``run``: sent after LIVE_AFTER_S, edited as output comes."""
        await self._first(run.finished, timeout=live.LIVE_AFTER_S)
        if run.finished.is_set() or self._room_id is None:
            return
        body, html = live.running_text(run.capability, run.request_id, run.text(),
                                       time.monotonic() - run.started)
        try:
            now = time.monotonic()
            run.throttle.sent(now)
            run.edit_times.append(now)
            run.event_id = await self.client.send_custom(
                self._room_id, "m.room.message", live.live_content(body, html, run.reply_to, run.request_id))
        except FnError as exc:
            log.warning("live message for %s not sent: %s", run.request_id, exc)
            return
        await self._typing(True)
        typed, shown = time.monotonic(), -1
        while not run.finished.is_set():
            if run.version == shown:
                run.changed.clear()
                await self._first(run.finished, run.changed, timeout=live.TYPING_REFRESH_S)
            if run.finished.is_set():
                break
            if time.monotonic() - typed > live.TYPING_REFRESH_S:
                await self._typing(True)
                typed = time.monotonic()
            if run.version == shown or not await self._throttled(run):
                continue
            shown = run.version
            body, html = live.running_text(run.capability, run.request_id, run.text(),
                                           time.monotonic() - run.started)
            now = time.monotonic()
            run.throttle.sent(now)
            run.edit_times.append(now)
            try:
                await self.client.send_custom(self._room_id, "m.room.message",
                                              live.edit_content(run.event_id, body, html, run.request_id,
                                                                "running"))
            except FnError as exc:
                log.warning("live edit for %s not sent: %s", run.request_id, exc)

    async def _final_edit(self, run: live.Running, body: str, html: str, result: dict[str, Any]) -> None:
        """The answer as the last edit of the live message (still at most one a second),
        carrying the result (bus.RESULT_KEY) as the notice does."""
        assert self._room_id is not None and run.event_id is not None
        while (delay := run.throttle.wait_s(time.monotonic())) > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        run.throttle.sent(now)
        run.edit_times.append(now)
        content = live.edit_content(run.event_id, body, html, run.request_id, "final")
        content[RESULT_KEY] = result
        await self.client.send_custom(self._room_id, "m.room.message", content)
        trace.stamp("agent.notice_sent", run.request_id)

    async def _handle(self, content: Any) -> None:
        try:
            outcome = await self.handle(content)
        except Exception as exc:
            # The room still hears about it (status error); the chain has whatever was written.
            log.exception("handling an envelope failed")
            outcome = self.pipeline.error_outcome(content, f"internal error: {type(exc).__name__}")
        finally:
            self._queued -= 1
        log.info("request %s: %s (%s)", outcome.request_id, outcome.status, outcome.reason)
        try:
            await self._reply(outcome)
        finally:
            # The new audit rows go to the hub once the answer is out (a second later: the
            # shipper settles), not while it is: the batch read, its POST and the hub's ingest
            # would share the CPU with the answer's encryption and the homeserver's send and
            # fan-out (profiled: ~6 ms per command, on the path).
            self.shipper.nudge.set()
            if self._prearmed:
                prearm.answered()  # the next command's gate, now that this answer is out

    async def _upload(
        self, outcome: Outcome
    ) -> tuple[attach.Plan | None, attachments.EncryptedFile | None, str]:
        """(plan, uploaded file) for a long or binary output, or a note when the upload failed."""
        plan = attach.plan(outcome, self.config.matrix_output_limit)
        if plan is None:
            return None, None, ""
        try:
            ref = await attachments.upload_encrypted(self.client, plan.data, filename=plan.name)
        except FnError as exc:
            log.warning("attachment for %s not sent (%s): %s", outcome.request_id, exc.code, exc.message)
            return None, None, f"(the output could not be sent as a file: {exc.code}; cut instead)"
        return plan, ref, ""

    async def _reply(self, outcome: Outcome) -> None:
        assert self._room_id is not None
        run = self._running.pop(outcome.request_id, None)
        editing = run is not None and run.event_id is not None
        if run is not None and run.edit_times:
            self.live_edits[outcome.request_id] = run.edit_times  # tests and figures read these
            while len(self.live_edits) > 64:
                self.live_edits.pop(next(iter(self.live_edits)))
        # an edit carries the text twice over (fallback and m.new_content)
        limit = self.config.matrix_output_limit // (2 if editing else 1)
        # The notice comes first (clients that wait for "the" answer read it), then the file.
        plan, ref, note = await self._upload(outcome)
        sent = None
        if plan is not None:
            sent = replies.SentFile(plan.name, len(plan.data), plan.total, attachments.sha256_hex(plan.data))
        binary = plan is not None and plan.binary
        body, html = replies.notice(outcome, limit, sent, binary=binary, note=note)
        backoff = Backoff(0.5, 30.0)
        deadline = time.monotonic() + 600
        while True:
            # One event per answer: the notice (or the live message's final edit) is the
            # operator's answer and carries the bot's record under bus.RESULT_KEY. A separate
            # result event cost a fourth encrypted event per command, persisted and fanned out
            # by the homeserver beside the next command (bench_e2e's waterfall). The result's
            # output gets what the text left of two notice limits (at most half a limit, at
            # least 256): the output is in the text already, and a text of HTML escapes
            # (``&`` is ``&amp;``) must still fit in one event with it.
            copies = 2 if editing else 1  # an edit carries the text twice over
            room = 2 * self.config.matrix_output_limit - copies * (len(body) + len(html))
            result = replies.result_content(outcome, max(256, min(limit // 2, room)), sent, binary=binary)
            try:
                if run is not None and run.event_id is not None:
                    await self._final_edit(run, body, html, result)
                    await self._typing(False)
                else:
                    await self._send_notice(outcome, body, html, result)
                if plan is not None and ref is not None:
                    await self._post_file(plan, ref, outcome.reply_to)
                return
            except FnError as exc:
                if exc.code in ("matrix_send_failed", "matrix_event_too_large") and outcome.output:
                    # The server refused the event itself (e.g. too large: the notice, its HTML
                    # and the carried result together): send it without output.
                    log.warning(
                        "reply to %s refused (%s); sending it without output", outcome.request_id, exc
                    )
                    outcome = replace(outcome, output=f"(output not sent: {exc.message[:200]})\n")
                    sent, binary, plan = None, False, None
                    body, html = replies.notice(outcome, limit)
                    continue
                if time.monotonic() > deadline:
                    log.error("giving up on the reply to %s: %s", outcome.request_id, exc)
                    return
                await backoff.sleep()

    async def _send_notice(self, outcome: Outcome, body: str, html: str, result: dict[str, Any]) -> None:
        assert self._room_id is not None
        content = message_content(body, notice=True, html=html, reply_to=outcome.reply_to)
        content[RESULT_KEY] = result
        await self.client.send_custom(self._room_id, "m.room.message", content)
        trace.stamp("agent.notice_sent", outcome.request_id)

    async def _post_file(
        self, plan: attach.Plan, ref: attachments.EncryptedFile, reply_to: str | None
    ) -> None:
        assert self._room_id is not None
        content = attachments.file_message(
            name=plan.name, data_size=len(plan.data), mimetype=plan.mimetype, file=ref, reply_to=reply_to
        )
        try:
            await self.client.send_custom(self._room_id, "m.room.message", content)
        except FnError as exc:  # the notice already said what it holds; the result event too
            log.warning("file %s not posted: %s", plan.name, exc)
