"""Load: N real device agents, operators sending commands at a fixed rate; 100 enrollments at once.

    .venv/bin/python bench/bench_load.py [--curve 1,5,10,20] [--rate 5] [--count 60]
                                          [--operators 2] [--enrollments 100]   # as root

1. For each N of the curve, the demo's rig (Synapse, hub, bot, N enrolled devices with
   their agents; no Docker engine) is brought up, and ``--operators`` operator sessions
   send ``!exec ls /tmp`` round-robin to the N devices at ``--rate`` commands per second
   in all, ``--count`` commands (bounded: each waits at most ``--timeout`` s, the whole
   step at most count/rate + timeout). Printed per N: throughput (answered commands per
   second of the step), p50/p95/p99 of the round trip, errors (timeouts, non-ok replies),
   the bot's, hub's and Synapse's CPU (seconds of CPU per second of the step, from
   /proc/PID/stat) and resident set, and the agents' mean resident set. The baseline of
   the same rig: one command at a time (``--serial`` commands, no concurrency). Every
   session is the one operator user: the bot's per-sender limit is raised to
   ``--operator-limit`` per minute (default 1200) so that the bench measures the system,
   not the limiter; ``--synapse-push`` runs Synapse with its push rules on (its default;
   the rig's homeserver.TUNING turns them off) for an A/B of that setting.
2. ``--enrollments`` enrollments at once against one hub (the hub test rig, no Synapse):
   that many threads POST ``/enroll`` together; 10 % of them reuse another thread's
   token with a fresh key, so exactly the others must succeed and those be refused
   (one use per token), and none may hang (each waits at most 60 s). Printed: counts,
   p50/p95/max answer time, the hub's RSS and CPU, beside one enrollment alone.

Every figure is printed with the machine's load average at that moment (shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshagents import trace
from meshagents.errors import FnError
from meshagents.testbed.benchkit import kept_dir, rss_mb, scripted_operator
from meshagents.testbed.rig import Rig

TICK = os.sysconf("SC_CLK_TCK")
#: stage stamps of every process of the rigs (meshagents.trace): where a loaded command waits
TRACE_FILE = kept_dir("bench-load-trace-") / "trace.jsonl"  # the newest few kept (benchkit)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (and its reaped children), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICK


def pcts(xs: list[float]) -> str:
    if not xs:
        return "no answers"
    s = sorted(xs)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(len(s) * p))] * 1000

    return f"p50 {q(0.5):6.0f}  p95 {q(0.95):6.0f}  p99 {q(0.99):6.0f} ms"


@dataclass
class StepResult:
    n: int
    sent: int = 0
    ok: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    serial: list[float] = field(default_factory=list)
    load: str = ""
    stamps: list[dict[str, object]] = field(default_factory=list)


def listed_dir() -> Path:
    """A directory of its own under /tmp for the command to list: a few hundred bytes of
    output whatever the machine's /tmp holds (a shared machine's /tmp of 600 entries made
    every ``ls /tmp`` answer a file attachment: one upload and one event more per command)."""
    d = Path(tempfile.mkdtemp(prefix="bench-load-ls-", dir="/tmp"))
    for i in range(8):
        (d / f"file-{i}.txt").write_text("x\n")
    d.chmod(0o755)
    return d


def device_names(n: int) -> tuple[str, ...]:
    return tuple(f"load-{i:02d}" for i in range(n))


async def drive(rig: Rig, names: tuple[str, ...], args: argparse.Namespace, res: StepResult) -> None:
    ops = [rig.operator_client(f"load-{i}-{secrets.token_hex(2)}") for i in range(args.operators)]
    for op in ops:
        await op.start()
    try:
        for name in names:  # warm-up: each device's room key shared with each session
            for op in ops:
                await op.command(name, args.command, timeout=90)
        for i in range(args.serial):  # the baseline: one at a time
            reply = await ops[0].command(names[i % len(names)], args.command, timeout=args.timeout)
            res.serial.append(reply.seconds)
        pids = {"bot": rig.procs.children["bot"].pid, "hub": rig.procs.children["wg_hub"].pid,
                "synapse": rig.procs.children["synapse"].pid}  # fmt: skip
        cpu0 = {k: cpu_s(p) for k, p in pids.items()}
        mark = len(trace.read(TRACE_FILE))
        peak = dict.fromkeys(pids, 0.0)
        interval = 1.0 / args.rate
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def one(i: int) -> None:
            op = ops[i % len(ops)]
            await asyncio.sleep(max(0.0, t0 + i * interval - loop.time()))  # fixed rate, open loop
            res.sent += 1
            try:
                reply = await op.command(names[i % len(names)], args.command, timeout=args.timeout)
            except FnError as exc:
                res.errors[exc.code] = res.errors.get(exc.code, 0) + 1
                return
            if reply.body.split("\n", 1)[0].endswith("]: ok"):
                res.ok.append(reply.seconds)
            else:
                key = "reply_not_ok: " + reply.body.split("\n", 1)[0][:80]
                res.errors[key] = res.errors.get(key, 0) + 1

        async def sample() -> None:
            while True:
                for k, p in pids.items():
                    peak[k] = max(peak[k], rss_mb(p, gone=0.0))
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        spy = start_profile(args, pids["synapse"], res.n)
        bound = args.count / args.rate + args.timeout + 5
        tasks = [asyncio.create_task(one(i)) for i in range(args.count)]
        _done, pending = await asyncio.wait(tasks, timeout=bound)
        for t in pending:
            t.cancel()
        res.errors["unfinished"] = len(pending) if pending else 0
        res.seconds = loop.time() - t0
        stop_profile(spy)
        await asyncio.sleep(1)  # the last result events reach the bot
        res.stamps = trace.read(TRACE_FILE)[mark:]
        res.load = loadavg()
        sampler.cancel()
        res.cpu = {k: (cpu_s(p) - cpu0[k]) / res.seconds for k, p in pids.items()}
        res.rss = peak
        agents = [rss_mb(rig.agent(n).pid, gone=0.0) for n in names]
        res.rss["agent (mean)"] = statistics.mean(agents)
    finally:
        for op in ops:
            await op.stop()


def start_profile(args: argparse.Namespace, pid: int, n: int) -> subprocess.Popen[bytes] | None:
    """``--profile DIR``: py-spy samples Synapse for the load step (collapsed stacks, the
    command's own ``--py-spy`` binary; not a dependency of the project)."""
    if not args.profile:
        return None
    out = Path(args.profile) / f"synapse-N{n}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [args.py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
           "--nonblocking", "--output", str(out)] + (["--gil"] if args.profile_gil else [])  # fmt: skip
    print(f"      profiling Synapse (pid {pid}) into {out}", flush=True)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def print_step(r: StepResult, rate: float) -> None:
    errors = {k: v for k, v in r.errors.items() if v}
    print(f"N={r.n:2d}  sent {r.sent} at {rate:g}/s over {r.seconds:.1f} s; answered ok {len(r.ok)}; "
          f"throughput {len(r.ok) / r.seconds:.2f}/s; "
          f"errors {sum(errors.values())} {errors or ''}")  # fmt: skip
    print(f"      round trip under load: {pcts(r.ok)}   baseline one at a time: {pcts(r.serial)}"
          f"  (n={len(r.serial)})")  # fmt: skip
    print("      CPU s/s: " + "  ".join(f"{k} {v:.2f}" for k, v in r.cpu.items())
          + "   RSS peak MB: " + "  ".join(f"{k} {v:.0f}" for k, v in r.rss.items()))  # fmt: skip
    if r.sent:
        per = {k: v * r.seconds / r.sent for k, v in r.cpu.items()}
        print("      CPU-s per command: " + "  ".join(f"{k} {v:.3f}" for k, v in per.items()))
    print(f"      load average at the end: {r.load}")
    print("\n".join("      " + line for line in trace.report(r.stamps)), flush=True)


def enrollments(count: int) -> None:
    import base64

    import httpx
    from nacl.signing import SigningKey

    from meshagents.trust.signing import public_b64
    from tests.testbed.hub_rig import _enter, hub_rig_cm

    work = Path(tempfile.mkdtemp(prefix="bench-load-enroll-", dir="/var/tmp"))
    state = work / "hub-state"
    state.mkdir(mode=0o700)
    with hub_rig_cm(work, state) as rig:
        assert rig.proc is not None
        pid = rig.proc.pid
        reuse = count // 10
        distinct = count - reuse
        tokens = [rig.token(f"en{i:03d}-{secrets.token_hex(2)}") for i in range(distinct + 1)]
        solo_token, tokens = tokens[0], tokens[1:]
        jobs = tokens + [tokens[i] for i in range(reuse)]  # a second use of the first `reuse` tokens

        def submit(token: str) -> tuple[int, float, str]:
            body = {"token": token, "wg_public_key": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "device_key": public_b64(SigningKey.generate())}  # fmt: skip
            t0 = time.perf_counter()
            try:
                r = httpx.post(f"{rig.public_url}/enroll", json=body, timeout=60)
            except httpx.HTTPError as exc:
                return -1, time.perf_counter() - t0, type(exc).__name__
            code = r.json().get("error", "") if r.status_code != 200 else ""
            return r.status_code, time.perf_counter() - t0, str(code)

        with ThreadPoolExecutor(1, initializer=_enter, initargs=(rig.internet,)) as one:
            solo = one.submit(submit, solo_token).result()
        rss0, cpu0 = rss_mb(pid, gone=0.0), cpu_s(pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(jobs), initializer=_enter, initargs=(rig.internet,)) as pool:
            answers = list(pool.map(submit, jobs))
        wall = time.perf_counter() - t0
        ok = [a for a in answers if a[0] == 200]
        refused: dict[str, int] = {}
        for a in answers:
            if a[0] != 200:
                refused[f"{a[0]} {a[2]}"] = refused.get(f"{a[0]} {a[2]}", 0) + 1
        times = [a[1] for a in answers]
        print(f"\n2. {len(jobs)} enrollments at once against one hub ({distinct} distinct tokens, "
              f"{reuse} second uses of a token with another key)")  # fmt: skip
        print(f"   one enrollment alone (baseline): {solo[1] * 1000:.0f} ms (HTTP {solo[0]})")
        print(f"   succeeded {len(ok)} (expected exactly {distinct}: "
              f"{'yes' if len(ok) == distinct else 'NO'}); refused {refused}; hung (no answer in 60 s): "
              f"{sum(1 for a in answers if a[0] == -1)}")  # fmt: skip
        print(f"   answer time {pcts(times)}, max {max(times) * 1000:.0f} ms; all answered in {wall:.1f} s")
        print(f"   hub: CPU {cpu_s(pid) - cpu0:.1f} s over {wall:.1f} s; "
              f"RSS {rss0:.0f} -> {rss_mb(pid, gone=0.0):.0f} MB; load average {loadavg()}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curve", default="1,5,10,20", help="numbers of devices, one rig each")
    ap.add_argument("--rate", type=float, default=5.0, help="commands per second, all operators together")
    ap.add_argument("--count", type=int, default=60, help="commands per step")
    ap.add_argument("--operators", type=int, default=2, help="operator sessions sending")
    ap.add_argument("--serial", type=int, default=10, help="baseline commands, one at a time")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds a command may wait for its answer")
    ap.add_argument("--enrollments", type=int, default=100, help="0: skip")
    ap.add_argument("--synapse-push", action="store_true",
                    help="Synapse evaluates push rules per event (its default) instead of the rig's tuning")
    ap.add_argument("--synapse-set", action="append", default=[], metavar="KEY=JSON",
                    help="a top-level homeserver.yaml setting over the rig's (repeatable), e.g. "
                         "'caches={\"global_factor\": 10}' or 'stats={\"enabled\": true}'")
    ap.add_argument("--operator-limit", type=float, default=1200.0,
                    help="the bot's commands_per_minute for the operator (0: the default 120)")
    ap.add_argument("--command", default="",
                    help="what the operators send (default: !exec ls of a small directory the bench makes)")
    ap.add_argument("--profile", default="",
                    help="directory: record Synapse with py-spy during each load step")
    ap.add_argument("--profile-gil", action="store_true",
                    help="--profile samples only the thread holding the GIL (Python CPU)")
    ap.add_argument("--py-spy", default="py-spy", help="the py-spy binary for --profile")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_load needs root (network namespaces, WireGuard)")
    import logging

    logging.getLogger("nio").setLevel(logging.ERROR)
    curve = [int(x) for x in args.curve.split(",") if x.strip()]
    listed = None
    if not args.command:
        listed = listed_dir()
        args.command = f"!exec ls {listed}"
    trace.enable(TRACE_FILE)
    print(f"1. load: {args.operators} operator sessions, {args.command} round-robin, {args.rate:g}/s, "
          f"{args.count} commands per step; load average at start {loadavg()}", flush=True)  # fmt: skip
    if args.synapse_push:
        from meshagents.matrix import homeserver

        homeserver.OVERRIDES["push"] = {"enabled": True}  # Synapse's default, for comparison
        print("   Synapse with push rules evaluated (its default; the rig's TUNING turns them off)")
    for setting in args.synapse_set:
        import json

        from meshagents.matrix import homeserver

        key, _, value = setting.partition("=")
        homeserver.OVERRIDES[key] = json.loads(value)
        print(f"   Synapse setting {key} = {homeserver.OVERRIDES[key]!r} (A/B against the rig's own)")
    try:
        for n in curve:
            t0 = time.perf_counter()
            limit = scripted_operator(args.operator_limit) if args.operator_limit else None
            with Rig.up(devices=device_names(n), docker=False, bot_settings=limit) as rig:
                print(f"rig with {n} devices up in {time.perf_counter() - t0:.1f} s", flush=True)
                res = StepResult(n)
                asyncio.run(drive(rig, device_names(n), args, res))
                print_step(res, args.rate)
    finally:
        if listed is not None:
            shutil.rmtree(listed, ignore_errors=True)
    if args.enrollments:
        enrollments(args.enrollments)
    if curve:
        print(f"stage stamps of every process (JSON lines, kept): {TRACE_FILE}")


if __name__ == "__main__":
    main()
