"""End-to-end figures on the full rig (``./fn bench e2e``), each beside a baseline of the same run.

    .venv/bin/python bench/bench_e2e.py [--n 100] [--approvals 5]     # as root

Brings up the demo's rig (Synapse, hub, bot, dashboard, two enrolled devices with their
agents; no Docker engine), then prints:

- command round trip operator -> bot -> device -> reply (``!exec ls /tmp/bench-e2e-ls-*``,
  a directory of five files, in #dev-home-wsl, the operator's E2EE client), n commands,
  p50 / p95 / mean;
- the floor: two bare nio clients with E2EE (nio's own olm store, an encrypted room,
  unverified devices given the room key as a bare client does) on the same Synapse, one
  echoing the other's texts, n round trips, p50 / p95 / mean, and the round trip's ratio
  to it at p50 and p95 (the issue: p95 <= 2x); the same echo without E2EE as a reference;
  each command is followed by one echo of each kind (interleaved: one load for all three);
- approval round trip: ``!fs.write`` -> request shown in #operator-approvals -> 👍 -> result,
  beside the plain command round trip of the run, with its waterfall (trace.APPROVAL_STAGES);
- revoke: ``POST /api/peers/{id}/revoke`` answered / the peer absent from the hub interface /
  ``peer_revoked`` at an SSE subscriber, beside ``GET /healthz`` of the same API, with the
  hub's stage stamps; the Matrix kick + logout (``matrix_kicked``) beside one password login;
  the device's saved session checked dead; the next command answered ``peer_revoked``;
- enrollment: token -> ``enroll_device`` done (handshake) and agent start -> room joined
  (the rig's own step timings);
- audit appends (intent + outcome, durable) and chain verifications per second;
- the device agent's resident set idle and the peak while serving the n commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from meshagents import trace
from meshagents.bus import APPROVAL_REQUEST_KEY
from meshagents.matrix.client import Incoming
from meshagents.testbed import benchcli
from meshagents.testbed.benchkit import RssPeak, kept_dir, rss_mb, scripted_operator
from meshagents.testbed.rig import Rig
from meshagents.testbed.rig.operator import in_reply_to

HOME = "home-wsl"
# Stage stamps (meshagents.trace) from this process and every process of the rig, which
# inherit the environment variable trace.enable sets.
TRACE_FILE = kept_dir("bench-e2e-trace-") / "trace.jsonl"  # the newest few kept (benchkit)
MEASURED: list[dict[str, Any]] = []
PC = "pc-aurgi"


def pct(values: list[float]) -> str:
    xs = sorted(values)
    p50 = xs[len(xs) // 2]
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    mean = statistics.mean(xs)
    return f"p50 {p50 * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  mean {mean * 1000:.0f} ms  (n={len(xs)})"


def med(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def p95(values: list[float]) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(len(xs) * 0.95))]


def print_waterfall(records: list[dict[str, Any]], floor: list[float]) -> None:
    """p50/p95 of each stage's share of the round trip, beside the bare echo of this run,
    then where each client's sends went (``matrix.send`` stamps of MatrixClient._send)."""
    print("\n".join(trace.report(records, floor)))
    sends: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("stage") == "matrix.send":
            sends.setdefault((str(r.get("user")), str(r.get("type"))), []).append(r)
    if sends:
        print("sends (MatrixClient._send, ms p50: total = prep + share + encrypt + put):")
    for (user, etype), rs in sorted(sends.items(), key=lambda kv: -len(kv[1])):
        parts = "  ".join(f"{k} {med([float(r.get(k, 0)) for r in rs]):.1f}"
                          for k in ("total", "prep", "share", "encrypt", "put"))
        print(f"  {user:32s} {etype:22s} n={len(rs):<4d} {parts}")


def listed_dir() -> Path:
    """A directory of its own under /tmp with a few files: what the measured ``!exec ls``
    lists. ``ls /tmp`` itself on a shared machine printed ~11 KB (650 entries of other
    processes), over the notice's inline limit: every answer then went as an uploaded file
    too (a media upload before the notice, one event more after it), and the figure
    depended on what else was in /tmp."""
    d = Path(tempfile.mkdtemp(prefix="bench-e2e-ls-", dir="/tmp"))
    for i in range(5):
        (d / f"file-{i}.txt").write_text("x\n")
    return d


class Echo:
    """Two bare nio clients: A sends a text, B echoes it, A waits for the echo (``once``).

    ``encrypted`` (the issue's "bare E2EE echo", the round trip's baseline): each client
    has nio's own olm store, the room is encrypted from its first event, and each sends
    with ``ignore_unverified_devices`` as a bare client does (no cross-signing, no trust
    policy: the other's device gets the room key unverified). Otherwise the room is plain."""

    def __init__(self, rig: Rig, *, encrypted: bool) -> None:
        self.rig, self.encrypted = rig, encrypted
        self.got: dict[str, asyncio.Future[float]] = {}
        self.tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        from nio import AsyncClient, AsyncClientConfig, RoomMessageText

        from meshagents.matrix.admin import register_user
        from meshagents.matrix.rooms import encryption_state

        rig, suffix = self.rig, secrets.token_hex(3)
        users = []
        for who in ("ea", "eb"):
            pw = secrets.token_urlsafe(12)
            register_user(rig.homeserver_url, rig.synapse.shared_secret, f"{who}{suffix}", pw)
            users.append((f"@{who}{suffix}:{rig.server_name}", pw))
        self.store = tmp = Path(tempfile.mkdtemp(prefix="bench-nio-", dir="/var/tmp"))
        conf = AsyncClientConfig(encryption_enabled=self.encrypted, store_sync_tokens=True)
        a = AsyncClient(rig.homeserver_url, users[0][0], store_path=str(tmp), config=conf)
        b = AsyncClient(rig.homeserver_url, users[1][0], store_path=str(tmp), config=conf)
        self.a, self.b = a, b
        await a.login(users[0][1])
        await b.login(users[1][1])
        for c in (a, b):
            if self.encrypted and c.should_upload_keys:
                await c.keys_upload()
        initial = [encryption_state()] if self.encrypted else []
        created = await a.room_create(invite=[users[1][0]], initial_state=initial)
        self.room_id = created.room_id
        await b.join(self.room_id)
        await a.sync(timeout=0)
        await b.sync(timeout=0)

        async def on_b(room: Any, ev: RoomMessageText) -> None:
            if ev.sender == users[0][0] and ev.body.startswith("ping "):
                pong = {"msgtype": "m.text", "body": "pong " + ev.body[5:]}
                await b.room_send(room.room_id, "m.room.message", pong, ignore_unverified_devices=True)

        async def on_a(room: Any, ev: RoomMessageText) -> None:
            if ev.sender == users[1][0] and ev.body.startswith("pong "):
                fut = self.got.get(ev.body[5:])
                if fut is not None and not fut.done():
                    fut.set_result(time.perf_counter())

        b.add_event_callback(on_b, RoomMessageText)
        a.add_event_callback(on_a, RoomMessageText)
        self.tasks = [asyncio.create_task(c.sync_forever(timeout=5000)) for c in (a, b)]
        await asyncio.sleep(1)
        for _ in range(3):  # room keys shared, olm sessions set up
            await self.once()

    async def once(self) -> float:
        tag = secrets.token_hex(4)
        fut = self.got[tag] = asyncio.get_running_loop().create_future()
        try:
            t0 = time.perf_counter()
            ping = {"msgtype": "m.text", "body": "ping " + tag}
            await self.a.room_send(self.room_id, "m.room.message", ping, ignore_unverified_devices=True)
            t1: float = await asyncio.wait_for(fut, 30)
            return t1 - t0
        finally:
            del self.got[tag]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for c in (self.a, self.b):
            await c.close()
        shutil.rmtree(self.store, ignore_errors=True)  # the two clients' olm stores


async def round_trips(rig: Rig, n: int) -> tuple[list[float], list[float], list[float], float, float]:
    """(command round trips, E2EE echoes, plain echoes, agent RSS idle, peak): n of each,
    interleaved (a command, an E2EE echo, a plain echo, ...) so that the baselines see the
    same machine as the commands on a shared, changing load."""
    op = rig.operator_client(f"bench-{secrets.token_hex(2)}")
    await op.start()
    listed = listed_dir()
    command = f"!exec ls {listed}"
    echoes = [Echo(rig, encrypted=True), Echo(rig, encrypted=False)]
    try:
        for _ in range(3):  # warm-up: room keys shared, sessions set up
            await op.command(HOME, command, timeout=60)
        for echo in echoes:
            await echo.start()
        pid = rig.agent(HOME).pid
        await asyncio.sleep(3)
        idle = rss_mb(pid)
        times: list[float] = []
        floor: list[float] = []
        plain: list[float] = []
        mark = len(trace.read(TRACE_FILE))
        with RssPeak(pid) as peak:
            for _ in range(n):
                reply = await op.command(HOME, command, timeout=60)
                if not reply.body.split("\n", 1)[0].endswith("]: ok"):
                    raise SystemExit(f"unexpected reply: {reply.body[:200]}")
                times.append(reply.seconds)
                await asyncio.sleep(0.05)  # the command's trailing syncs settle before the echo
                floor.append(await echoes[0].once())
                plain.append(await echoes[1].once())
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the answers' stamps at the bot
        global MEASURED
        MEASURED = trace.read(TRACE_FILE)[mark:]
        return times, floor, plain, idle, peak.peak
    finally:
        for echo in echoes:
            with contextlib.suppress(Exception):
                await echo.stop()
        await op.stop()
        shutil.rmtree(listed, ignore_errors=True)


async def approval_round_trips(
    rig: Rig, n: int
) -> tuple[list[float], list[float], list[dict[str, Any]]]:
    """(command -> request shown, 👍 -> result, the stage stamps of those n approvals)."""
    op = rig.operator_client(f"bench-appr-{secrets.token_hex(2)}")
    await op.start()
    shown: list[float] = []
    after: list[float] = []
    try:
        approvals = await op.approvals_room()
        seen: set[str] = set()
        mark = len(trace.read(TRACE_FILE))
        for i in range(n):
            target = f"/tmp/bench-e2e-{secrets.token_hex(3)}-{i}"
            t0 = time.perf_counter()
            room, cmd = await op.send(HOME, f"!fs.write {target} hello")

            def is_request(e: Incoming) -> bool:
                req = e.content.get(APPROVAL_REQUEST_KEY)
                return e.room_id == approvals and e.event_id not in seen and isinstance(req, dict)

            request = await op.wait_message(is_request, 60)
            seen.add(request.event_id)
            t1 = time.perf_counter()
            t1_wall = time.time_ns()
            await op.approve(request.event_id)
            trace.stamp("op.approve", cmd, wall_ns=t1_wall)  # keyed by the command: bot.decided joins it
            trace.stamp("op.approve", request.event_id, wall_ns=t1_wall)  # and by R: bot.reaction's key
            user = rig.devices[HOME].matrix_user

            def is_result(e: Incoming, cmd: str = cmd, room: str = room, user: str = user) -> bool:
                return e.room_id == room and in_reply_to(e.content) == cmd and e.sender == user

            await op.wait_message(is_result, 60)
            t2 = time.perf_counter()
            trace.stamp("op.reply", cmd)
            shown.append(t1 - t0)
            after.append(t2 - t1)
            Path(target).unlink(missing_ok=True)
        await asyncio.sleep(0.5)
        return shown, after, trace.read(TRACE_FILE)[mark:]
    finally:
        await op.stop()


def healthz_floor(rig: Rig, n: int = 20) -> list[float]:
    """The revoke's baseline: the same hub API answering a no-op (``GET /healthz``)."""
    out = []
    with httpx.Client(timeout=30) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            http.get(f"{rig.hub_api_url}/healthz").raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


def login_floor(rig: Rig, n: int = 5) -> list[float]:
    """The Matrix side's baseline: one password login round trip (a throwaway user)."""
    from meshagents.matrix.admin import register_user

    user, pw = f"lf{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    register_user(rig.homeserver_url, rig.synapse.shared_secret, user, pw)
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": pw}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        httpx.post(f"{rig.homeserver_url}/_matrix/client/v3/login", json=body, timeout=30).raise_for_status()
        out.append(time.perf_counter() - t0)
    return out


class HubEvents:
    """The hub's event stream in a thread: wall time of the first event of each type (for one device)."""

    def __init__(self, rig: Rig, device_id: str) -> None:
        self.rig, self.device_id = rig, device_id
        self.seen: dict[str, tuple[float, Any]] = {}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        import json

        headers = {"Authorization": f"Bearer {self.rig.api_token}"}
        try:
            with httpx.stream("GET", f"{self.rig.hub_api_url}/api/events", headers=headers,
                              timeout=httpx.Timeout(30, read=1.0)) as resp:  # fmt: skip
                self.ready.set()
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    try:
                        ev = json.loads(line[5:])
                    except ValueError:
                        continue
                    data = ev.get("data") if isinstance(ev, dict) else None
                    if isinstance(data, dict) and data.get("device_id") == self.device_id:
                        self.seen.setdefault(str(ev.get("type")), (time.perf_counter(), data))
        except httpx.HTTPError:
            self.ready.set()

    def wait(self, kind: str, timeout: float) -> tuple[float, Any] | None:
        deadline = time.perf_counter() + timeout
        while kind not in self.seen and time.perf_counter() < deadline:
            time.sleep(0.005)
        return self.seen.get(kind)

    def close(self) -> None:
        self._stop.set()


def device_token_alive(rig: Rig, name: str) -> bool | None:
    """Whether the device agent's saved Matrix session still works (None: no session found)."""
    import json

    for path in rig.workdir.rglob("session.json"):
        try:
            sess = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if sess.get("user_id") == rig.devices[name].matrix_user:
            auth = {"Authorization": f"Bearer {sess['access_token']}"}
            r = httpx.get(f"{rig.homeserver_url}/_matrix/client/v3/account/whoami", headers=auth, timeout=10)
            return r.status_code == 200
    return None


async def next_command_after_revoke(rig: Rig) -> tuple[float, str]:
    op = rig.operator_client(f"bench-rev-{secrets.token_hex(2)}")
    await op.start()
    try:
        reply = await op.command(PC, "!exec ls /tmp", timeout=30)
        return reply.seconds, reply.body.split("\n", 1)[0]
    finally:
        await op.stop()


REVOKE_STAGES = ("op.revoke", "hub.revoke", "hub.revoke.off_interface", "hub.revoke.stored",
                 "hub.revoke.published", "op.revoked")  # fmt: skip


def revoke_figure(rig: Rig) -> dict[str, Any]:
    """Revoking pc-aurgi through the API: the answer, the peer off the interface, the
    hub's ``peer_revoked`` event, the Matrix kick + logout (``matrix_kicked``), the
    device's session dead, and the next command's refusal."""
    from meshagents.wg.userspace import UserspaceBackend

    be = UserspaceBackend(rig.hub_interface, rig.hub_netns)
    needle = f"allowed_ip={rig.devices[PC].address.split('/')[0]}/32"

    def present() -> bool:  # one UAPI get: what the interface itself says
        return needle in be.uapi.get_raw()

    assert present()
    assert device_token_alive(rig, PC) is not False
    events = HubEvents(rig, rig.devices[PC].device_id)
    try:
        rid = f"revoke:{rig.devices[PC].device_id}"
        mark = len(trace.read(TRACE_FILE))
        http = httpx.Client(timeout=30)  # kept alive, as the healthz baseline's: the call, not a connect
        http.get(f"{rig.hub_api_url}/healthz").raise_for_status()
        t0 = time.perf_counter()
        trace.stamp("op.revoke", rid)
        r = http.post(
            f"{rig.hub_api_url}/api/peers/{rig.devices[PC].device_id}/revoke",
            headers={"Authorization": f"Bearer {rig.api_token}"},
        )
        http.close()
        t_api = time.perf_counter() - t0
        trace.stamp("op.revoked", rid)
        if r.status_code != 200:
            raise SystemExit(f"revoke: HTTP {r.status_code} {r.text[:200]}")
        while present() and time.perf_counter() - t0 < 10:
            time.sleep(0.002)
        t_gone = time.perf_counter() - t0
        revoked = events.wait("peer_revoked", 10)
        kicked = events.wait("matrix_kicked", 10)
    finally:
        events.close()
    alive = device_token_alive(rig, PC)
    took, first_line = asyncio.run(next_command_after_revoke(rig))
    return {
        "api": t_api, "gone": t_gone,
        "event": revoked[0] - t0 if revoked else None,
        "kicked": kicked[0] - t0 if kicked else None,
        "kick_result": kicked[1].get("result") if kicked else None,
        "token_alive": alive, "next": took, "next_reply": first_line,
        "live_ms": r.json().get("live_removed_ms"),
        "stages": trace.waterfall(trace.read(TRACE_FILE)[mark:], REVOKE_STAGES),
    }  # fmt: skip


def hub_rss_with_peers(rig: Rig, count: int) -> tuple[float, float, float]:
    """(hub RSS before, with ``count`` more peers on its interface and ledger while an SSE
    client is subscribed and /api/peers was listed once, seconds to that first SSE event)."""
    from meshagents.testbed.benchkit import bulk_peers

    pid = rig.procs.children["wg_hub"].pid
    before = rss_mb(pid)
    bulk_peers(rig.hub_interface, rig.hub_netns,
               rig.workdir / "hub-wg" / ".meshagents" / f"{rig.hub_interface}.sqlite", count)
    headers = {"Authorization": f"Bearer {rig.api_token}"}
    listed = []
    for _ in range(6):  # the first warms the hub's ledger and caches; all six printed
        t_list = time.perf_counter()
        got = httpx.get(f"{rig.hub_api_url}/api/peers", headers=headers, timeout=120)
        got.raise_for_status()
        listed.append(time.perf_counter() - t_list)
    print(f"hub GET /api/peers with {len(got.json()['peers']):,} peers: {pct(listed)} "
          f"({len(got.content) / 1e6:.1f} MB; load {Path('/proc/loadavg').read_text().split()[0]})")
    t0 = time.perf_counter()
    first = 0.0
    with RssPeak(pid) as peak:
        try:
            with httpx.stream(
                "GET", f"{rig.hub_api_url}/api/events", headers=headers, timeout=httpx.Timeout(120, read=8)
            ) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data:") and not first:
                        first = time.perf_counter() - t0
                    if first and time.perf_counter() - t0 > first + 3:  # a few more polls
                        break
        except httpx.TimeoutException:
            pass  # no change to report after the first event: the stream stays quiet
    return before, max(peak.peak, rss_mb(pid)), first


def audit_rates(n: int = 2000) -> tuple[float, float, float]:
    """(entries appended per s, chain verifications per s of that chain, entries verified per s)."""
    from meshagents.trust.audit import AuditLog

    with tempfile.TemporaryDirectory() as tmp, AuditLog(Path(tmp) / "a.sqlite", device_id="bench") as log:
        t0 = time.perf_counter()
        for i in range(n // 2):
            rid = f"r{i}"
            log.append_intent(rid, "shell.exec.ls", {"argv": ["ls", "/tmp"]}, nonce=f"n{i}")
            log.append_outcome(rid, "shell.exec.ls", "ok")
        appends = n / (time.perf_counter() - t0)
        rounds = 5
        t1 = time.perf_counter()
        for _ in range(rounds):
            assert log.verify().ok
        per = (time.perf_counter() - t1) / rounds
        return appends, 1 / per, n / per


def main() -> None:
    ns = benchcli.options(
        __doc__.split("\n\n")[0] if __doc__ else None,
        n=(int, 100), approvals=(int, 5), peers=(int, 10_000, "peers bulk-loaded for the hub's RSS"),
    )
    import logging

    logging.getLogger("nio").setLevel(logging.ERROR)
    trace.enable(TRACE_FILE)
    t0 = time.perf_counter()
    with Rig.up(devices=(HOME, PC), docker=False, bot_settings=scripted_operator()) as rig:
        print(f"rig up in {time.perf_counter() - t0:.1f} s")
        for step, secs in rig.timings.items():
            if step.startswith("device ") or step.startswith("operator joins"):
                print(f"  rig step {step}: {secs:.2f} s")
        cmd, floor, plain, idle, peak = asyncio.run(round_trips(rig, ns.n))
        print(f"command round trip operator -> bot -> device -> reply: {pct(cmd)}")
        print(f"floor: two bare nio clients echoing, E2EE:              {pct(floor)}")
        print(f"  reference: the same echo without E2EE:               {pct(plain)}")
        print(f"round trip / E2EE echo: p50 {med(cmd) / med(floor):.2f}x, p95 {p95(cmd) / p95(floor):.2f}x "
              f"(aim p95 <= 2x and <= 300 ms: {p95(cmd) * 1000:.0f} ms)")
        print_waterfall(MEASURED, floor)
        print(f"stage stamps of every process (JSON lines, kept): {TRACE_FILE}")
        print(f"machine load: {Path('/proc/loadavg').read_text().strip()}")
        print(
            f"device agent RSS: idle {idle:.1f} MB, peak while serving {ns.n} commands "
            f"{peak:.1f} MB (aim < 80)"
        )
        if ns.approvals > 0:  # --approvals 0: the command round trip and the revoke only
            shown, after, stamps = asyncio.run(approval_round_trips(rig, ns.approvals))
            print(f"approval: command -> request shown: {pct(shown)}")
            print(f"approval: 👍 -> result:              {pct(after)}  (aim <= 500 ms)")
            print(f"  baseline, same run: the plain command round trip {pct(cmd)}; "
                  f"ratio at p50 {med(after) / med(cmd):.2f}")
            print("\n".join("  " + line for line in trace.report(
                stamps, None, trace.APPROVAL_STAGES, (("op.approve", "bot.reaction"),))))
        hz, lf = healthz_floor(rig), login_floor(rig)
        rv = revoke_figure(rig)

        def ms(x: float | None) -> str:
            return "never (10 s)" if x is None else f"{x * 1000:.0f} ms"

        print(f"revoke: API answered {ms(rv['api'])} (aim <= 100 ms); "
              f"peer off the interface {ms(rv['gone'])}; "
              f"peer_revoked at an SSE subscriber {ms(rv['event'])}")  # fmt: skip
        print(f"  baseline, same run: GET /healthz of the same API {pct(hz)}")
        print("  waterfall (ms from the previous stage): " + ", ".join(
            f"{stage} {xs[0] * 1000:.1f}" for stage, xs in rv["stages"] if xs)
            + f"; inside wg_peer_revoke, ledger + off the interface: {rv['live_ms']} ms")  # fmt: skip
        print(f"revoke: Matrix kick + logout of every device session done (matrix_kicked) {ms(rv['kicked'])} "
              f"(aim <= 1 s): {rv['kick_result']}; device's saved session still valid: {rv['token_alive']}")
        print(f"  baseline, same run: one Matrix password login {pct(lf)}")
        print(f"revoke: next command to {PC} answered in {ms(rv['next'])}: {rv['next_reply'][:100]!r}")
        if ns.peers:
            before, with_peers, first = hub_rss_with_peers(rig, ns.peers)
            print(
                f"hub (wg_hub) RSS: {before:.1f} MB with 2 peers; {with_peers:.1f} MB with {ns.peers:,} more "
                f"(SSE subscribed, first event after {first:.1f} s)"
            )
    appends, verifies, entries = audit_rates()
    print(
        f"audit: {appends:.0f} appends/s (durable); chain of 2000 entries verified {verifies:.1f}/s "
        f"({entries:.0f} entries/s)"
    )


if __name__ == "__main__":
    main()
