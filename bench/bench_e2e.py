"""End-to-end figures on the full rig (``./fn bench e2e``), each beside a baseline of the same run.

    .venv/bin/python bench/bench_e2e.py [--n 100] [--approvals 5]     # as root

Brings up the demo's rig (Synapse, hub, bot, dashboard, two enrolled devices with their
agents; no Docker engine), then prints:

- command round trip operator -> bot -> device -> reply (``!exec ls /tmp`` in
  #dev-home-wsl, the operator's E2EE client), n commands, p50 / p95 / mean;
- the floor: two bare nio clients (no E2EE) on the same Synapse, one echoing the other's
  texts, n round trips, p50 / p95 / mean;
- approval round trip: ``!fs.write`` -> request shown in #operator-approvals -> 👍 -> result;
- revoke: ``POST /api/peers/{id}/revoke`` -> the peer absent from the hub interface;
- enrollment: token -> ``enroll_device`` done (handshake) and agent start -> room joined
  (the rig's own step timings);
- audit appends (intent + outcome, durable) and chain verifications per second;
- the device agent's resident set idle and the peak while serving the n commands.
"""

from __future__ import annotations

import asyncio
import secrets
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
from meshagents.testbed.rig import Rig
from meshagents.testbed.rig.operator import in_reply_to

HOME = "home-wsl"
# Stage stamps (meshagents.trace) from this process and every process of the rig, which
# inherit the environment variable trace.enable sets.
TRACE_FILE = Path(tempfile.mkdtemp(prefix="bench-e2e-trace-", dir="/var/tmp")) / "trace.jsonl"
MEASURED: list[dict[str, Any]] = []
PC = "pc-aurgi"


def pct(values: list[float]) -> str:
    xs = sorted(values)
    p50 = xs[len(xs) // 2]
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    mean = statistics.mean(xs)
    return f"p50 {p50 * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  mean {mean * 1000:.0f} ms  (n={len(xs)})"


def print_waterfall(records: list[dict[str, Any]], floor: list[float]) -> None:
    """p50/p95 of each stage's share of the round trip, beside the bare echo of this run."""
    print("\n".join(trace.report(records, floor)))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssPeak:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def command_round_trips(rig: Rig, n: int) -> tuple[list[float], float, float]:
    op = rig.operator_client(f"bench-{secrets.token_hex(2)}")
    await op.start()
    try:
        for _ in range(3):  # warm-up: room keys shared, sessions set up
            await op.command(HOME, "!exec ls /tmp", timeout=60)
        pid = rig.agent(HOME).pid
        await asyncio.sleep(3)
        idle = rss_mb(pid)
        times: list[float] = []
        mark = len(trace.read(TRACE_FILE))
        with RssPeak(pid) as peak:
            for _ in range(n):
                reply = await op.command(HOME, "!exec ls /tmp", timeout=60)
                if not reply.body.split("\n", 1)[0].endswith("]: ok"):
                    raise SystemExit(f"unexpected reply: {reply.body[:200]}")
                times.append(reply.seconds)
        await asyncio.sleep(0.5)  # the result event's stamps at the bot
        global MEASURED
        MEASURED = trace.read(TRACE_FILE)[mark:]
        return times, idle, peak.peak
    finally:
        await op.stop()


async def nio_floor(rig: Rig, n: int) -> list[float]:
    """Two bare nio clients, no E2EE: A sends a text, B echoes it, A waits for the echo."""
    from nio import AsyncClient, RoomMessageText

    from meshagents.matrix.admin import register_user

    suffix = secrets.token_hex(3)
    users = []
    for who in ("ea", "eb"):
        pw = secrets.token_urlsafe(12)
        register_user(rig.homeserver_url, rig.synapse.shared_secret, f"{who}{suffix}", pw)
        users.append((f"@{who}{suffix}:{rig.server_name}", pw))
    tmp = Path(tempfile.mkdtemp(prefix="bench-nio-"))
    a = AsyncClient(rig.homeserver_url, users[0][0], store_path=str(tmp))
    b = AsyncClient(rig.homeserver_url, users[1][0], store_path=str(tmp))
    await a.login(users[0][1])
    await b.login(users[1][1])
    created = await a.room_create(invite=[users[1][0]])
    room_id = created.room_id
    await b.join(room_id)
    await a.sync(timeout=0)
    await b.sync(timeout=0)
    got: dict[str, asyncio.Future[float]] = {}

    async def on_b(room: Any, ev: RoomMessageText) -> None:
        if ev.sender == users[0][0] and ev.body.startswith("ping "):
            await b.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": "pong " + ev.body[5:]}
            )

    async def on_a(room: Any, ev: RoomMessageText) -> None:
        if ev.sender == users[1][0] and ev.body.startswith("pong "):
            fut = got.get(ev.body[5:])
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())

    b.add_event_callback(on_b, RoomMessageText)
    a.add_event_callback(on_a, RoomMessageText)
    tasks = [asyncio.create_task(c.sync_forever(timeout=5000)) for c in (a, b)]
    try:
        await asyncio.sleep(1)
        times: list[float] = []
        for i in range(n + 3):
            tag = f"{i}-{secrets.token_hex(2)}"
            got[tag] = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            await a.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "ping " + tag})
            t1 = await asyncio.wait_for(got[tag], 30)
            if i >= 3:
                times.append(t1 - t0)
        return times
    finally:
        for t in tasks:
            t.cancel()
        for c in (a, b):
            await c.close()


async def approval_round_trips(rig: Rig, n: int) -> tuple[list[float], list[float]]:
    """(command -> request shown, 👍 -> result) for n approvals."""
    op = rig.operator_client(f"bench-appr-{secrets.token_hex(2)}")
    await op.start()
    shown: list[float] = []
    after: list[float] = []
    try:
        approvals = await op.approvals_room()
        seen: set[str] = set()
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
            await op.approve(request.event_id)
            user = rig.devices[HOME].matrix_user

            def is_result(e: Incoming, cmd: str = cmd, room: str = room, user: str = user) -> bool:
                return e.room_id == room and in_reply_to(e.content) == cmd and e.sender == user

            await op.wait_message(is_result, 60)
            t2 = time.perf_counter()
            shown.append(t1 - t0)
            after.append(t2 - t1)
            Path(target).unlink(missing_ok=True)
        return shown, after
    finally:
        await op.stop()


def revoke_figure(rig: Rig) -> tuple[float, float]:
    """(API answer, peer absent from the interface) for revoking pc-aurgi."""
    from meshagents.wg import hub as wg_hub

    def peers() -> list[str]:
        st = wg_hub.status(
            interface=rig.hub_interface, config_dir=rig.workdir / "hub-wg", netns=rig.hub_netns
        )
        return [str(p.get("name")) for p in st["peers"]]

    assert PC in peers()
    t0 = time.perf_counter()
    r = httpx.post(
        f"{rig.hub_api_url}/api/peers/{rig.devices[PC].device_id}/revoke",
        headers={"Authorization": f"Bearer {rig.api_token}"},
        timeout=30,
    )
    t_api = time.perf_counter() - t0
    if r.status_code != 200:
        raise SystemExit(f"revoke: HTTP {r.status_code} {r.text[:200]}")
    while PC in peers():
        if time.perf_counter() - t0 > 10:
            break
        time.sleep(0.005)
    return t_api, time.perf_counter() - t0


def hub_rss_with_peers(rig: Rig, count: int) -> tuple[float, float, float]:
    """(hub RSS before, with ``count`` more peers on its interface and ledger while an SSE
    client is subscribed and /api/peers was listed once, seconds to that first SSE event)."""
    import base64
    import sqlite3

    from meshagents.wg.model import PeerSpec
    from meshagents.wg.uapi import render_set
    from meshagents.wg.userspace import UserspaceBackend

    pid = rig.procs.children["wg_hub"].pid
    before = rss_mb(pid)
    be = UserspaceBackend(rig.hub_interface, rig.hub_netns)
    db = sqlite3.connect(rig.workdir / "hub-wg" / ".meshagents" / f"{rig.hub_interface}.sqlite")
    now = time.time()
    for base in range(0, count, 500):
        batch = [
            PeerSpec(base64.b64encode(secrets.token_bytes(32)).decode(), (f"10.200.{i // 256}.{i % 256}/32",))
            for i in range(base, min(base + 500, count))
        ]
        be.uapi.set(render_set(peers=batch))
        db.executemany(
            "INSERT INTO peers VALUES (?, ?, ?, ?, 'active', 0, ?, ?)",
            [(p.public_key, f"bulk-{base + j}", f"10.200.{(base + j) // 256}.{(base + j) % 256}",
              200000 + base + j, now, now) for j, p in enumerate(batch)],
        )  # fmt: skip
    db.commit()
    db.close()
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
    with Rig.up(devices=(HOME, PC), docker=False) as rig:
        print(f"rig up in {time.perf_counter() - t0:.1f} s")
        for step, secs in rig.timings.items():
            if step.startswith("device ") or step.startswith("operator joins"):
                print(f"  rig step {step}: {secs:.2f} s")
        cmd, idle, peak = asyncio.run(command_round_trips(rig, ns.n))
        floor = asyncio.run(nio_floor(rig, ns.n))
        print(f"command round trip operator -> bot -> device -> reply: {pct(cmd)}")
        print(f"floor: two bare nio clients echoing (no E2EE):          {pct(floor)}")
        print_waterfall(MEASURED, floor)
        print(f"stage stamps of every process (JSON lines, kept): {TRACE_FILE}")
        print(f"machine load: {Path('/proc/loadavg').read_text().strip()}")
        print(
            f"device agent RSS: idle {idle:.1f} MB, peak while serving {ns.n} commands "
            f"{peak:.1f} MB (aim < 80)"
        )
        shown, after = asyncio.run(approval_round_trips(rig, ns.approvals))
        print(f"approval: command -> request shown: {pct(shown)}")
        print(f"approval: 👍 -> result:              {pct(after)}")
        t_api, t_gone = revoke_figure(rig)
        print(
            f"revoke: API answered {t_api * 1000:.0f} ms; "
            f"peer absent from the interface {t_gone * 1000:.0f} ms"
        )
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
