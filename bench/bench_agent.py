"""Device agent: resident memory idle and while serving, envelope-to-result latency.

    .venv/bin/python bench/bench_agent.py [--requests 50]

Starts one embedded Synapse on a free loopback port (temp dir, removed after), an
operator and a stand-in bot on the Matrix client base, and the agent as its own
process (``python -m meshagents.apps.device_agent``, sandbox on), exactly as systemd runs it.
Measures, in the same run:

- RSS of the agent process: idle (after start and a few seconds of syncing) and the
  peak while serving the requests (sampled every 20 ms from /proc);
- envelope-to-result latency: the bot sends a signed envelope, the time until the
  operator has decrypted the agent's ``org.meshagents.result`` event, for
  ``system.info`` (no child process) and ``shell.exec.echo`` (bubblewrap);
- baselines: the same ``shell.exec.echo`` envelope through the pipeline alone
  (verify + audit + bwrap run, no Matrix), in this process; and one encrypted custom
  event from the bot to the operator (the Matrix transport alone; the agent's path is
  two such hops: envelope in, result out);
- sandbox start cost, interleaved in one loop so the machine's load hits all alike:
  ``/bin/true`` started bare, under the old ``bwrap --ro-bind / /`` line, and under
  the hardened sandbox (``sandbox.run``: own view, user namespace, cap drop, seccomp
  program through a memfd, pids cgroup, rlimits). ``--sandbox-only`` runs just this.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AGENT_PYTHON = sys.executable  # --agent-python: the interpreter the agent runs under
sys.path.insert(0, str(ROOT))

from meshagents.apps.device_agent.capabilities.base import Context  # noqa: E402
from meshagents.apps.device_agent.pipeline import Pipeline  # noqa: E402
from meshagents.bus import ENVELOPE_EVENT, STATUS_EVENT  # noqa: E402
from meshagents.matrix.client import ClientConfig, Incoming, MatrixClient  # noqa: E402
from meshagents.matrix.homeserver import EmbeddedSynapse  # noqa: E402
from meshagents.testbed import benchcli  # noqa: E402
from meshagents.testbed.benchkit import RssPeak, pct, rss_mb  # noqa: E402
from tests.testbed.agent_rig import make_rig  # noqa: E402
from tests.testbed.results import on_results  # noqa: E402
from tests.testbed.synapse import free_port  # noqa: E402


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<44} n={len(values):<4} p50={pct(values, 50):7.1f} ms  p95={pct(values, 95):7.1f} ms  "
        f"mean={statistics.fmean(values):7.1f} ms"
    )


async def run(requests: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    suffix = secrets.token_hex(3)
    hs = EmbeddedSynapse(tmp / "hs", port=free_port())
    hs.write_config()
    hs.start()
    clients: list[MatrixClient] = []
    proc: subprocess.Popen[bytes] | None = None
    try:

        def user(prefix: str) -> tuple[str, str]:
            pw = secrets.token_urlsafe(12)
            return hs.register(f"{prefix}-{suffix}", pw), pw

        (op, op_pw), (bot_u, bot_pw), (dev, dev_pw) = user("operator"), user("bot"), user("dev")

        def cfg(u: str, pw: str, name: str, **kw: Any) -> ClientConfig:
            return ClientConfig(homeserver=hs.url, user_id=u, password=pw, store_dir=tmp / name, **kw)

        operator = MatrixClient(cfg(op, op_pw, "op"))
        bot = MatrixClient(cfg(bot_u, bot_pw, "bot", operators=(op,)))
        clients += [operator, bot]
        results: dict[str, asyncio.Future[float]] = {}
        ready = asyncio.get_running_loop().create_future()

        async def on_result(ev: Incoming) -> None:
            fut = results.get(str(ev.content.get("request_id")))
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())

        async def on_status(ev: Incoming) -> None:
            if ev.content.get("state") == "ok" and not ready.done():
                ready.set_result(True)

        async def on_ping(ev: Incoming) -> None:
            fut = results.get(str(ev.content.get("ping")))
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())

        on_results(operator, on_result)
        operator.on_custom_event("org.meshagents.bench", on_ping)
        operator.on_custom_event(STATUS_EVENT, on_status)
        await operator.start()
        await bot.start()
        room = await operator.create_room(invite=[bot_u, dev])
        approvals = await operator.create_room(invite=[bot_u, dev])
        await operator.wait_for_member(room, bot_u)
        rig = make_rig(
            tmp / "device",
            approvers=[op],
            homeserver=hs.url,
            matrix_user=dev,
            matrix_password=dev_pw,
            device_room=room,
            approvals_room=approvals,
            bot_users=[bot_u],
            health_interval_s=10,
        )
        env = {
            **os.environ,
            "FN_STATE_DIR": str(tmp / "fn-state"),
            "MESHAGENTS_LOG_LEVEL": os.environ.get("BENCH_AGENT_LOG", "WARNING"),
        }
        if sys.executable != AGENT_PYTHON:  # an installed copy (bench_footprint): nothing of the checkout
            env = {k: v for k, v in env.items() if k not in ("FN_PROJECT_ROOT", "PYTHONPATH", "VIRTUAL_ENV")}
        t_start = time.perf_counter()
        proc = subprocess.Popen(
            [AGENT_PYTHON, "-m", "meshagents.apps.device_agent", "--config", str(rig.config_path)],
            cwd=ROOT if sys.executable == AGENT_PYTHON else "/",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("BENCH_AGENT_LOGFILE", os.devnull), "w"),  # noqa: SIM115 - lives as long as the child
        )
        await asyncio.wait_for(ready, 60)
        startup = time.perf_counter() - t_start
        await bot.wait_for_member(room, dev)
        await asyncio.sleep(5)
        idle = rss_mb(proc.pid)

        async def one(capability: str, args: dict[str, Any]) -> float:
            content = rig.content(capability, args)
            rid = content["envelope"]["request_id"]
            results[rid] = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            await bot.send_custom(room, ENVELOPE_EVENT, content)
            done = await asyncio.wait_for(results[rid], 30)
            return (done - t0) * 1000

        async def ping(i: int) -> float:
            key = f"ping-{i}"
            results[key] = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            await bot.send_custom(room, "org.meshagents.bench", {"ping": key})
            return (await asyncio.wait_for(results[key], 30) - t0) * 1000

        await one("system.info", {})  # first message: room-key sharing, reported apart
        await ping(-1)
        pings = [await ping(i) for i in range(requests)]
        with RssPeak(proc.pid, every_s=0.02) as sampler:
            info = [await one("system.info", {}) for _ in range(requests)]
            echo = [await one("shell.exec.echo", {"argv": ["echo", f"n{i}"]}) for i in range(requests)]
            burst_t0 = time.perf_counter()
            await asyncio.gather(*(one("shell.exec.echo", {"argv": ["echo", f"b{i}"]}) for i in range(20)))
            burst = (time.perf_counter() - burst_t0) * 1000
        after = rss_mb(proc.pid)

        base_rig = make_rig(tmp / "baseline")
        pipe = Pipeline(base_rig.config)
        base = []
        for i in range(requests):
            content = base_rig.content("shell.exec.echo", {"argv": ["echo", f"x{i}"]})
            t0 = time.perf_counter()
            out = pipe.process(content, None, Context(sandbox=True))
            base.append((time.perf_counter() - t0) * 1000)
            assert out.status == "ok", out
        pipe.close()

        print(f"agent start to first status event: {startup:.2f} s")
        print(f"agent RSS idle:                    {idle:.1f} MB   (aim < 80 MB)")
        print(f"agent RSS peak while serving:      {sampler.peak:.1f} MB")
        print(f"agent RSS after serving:           {after:.1f} MB")
        print(summary("envelope -> result, system.info (Matrix)", info))
        print(summary("envelope -> result, shell.exec.echo (Matrix)", echo))
        print(f"{'burst of 20 echo envelopes at once':<44} all results after {burst:.0f} ms")
        print(summary("baseline: pipeline alone, shell.exec.echo", base))
        print(summary("baseline: one event bot -> operator (Matrix)", pings))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for c in clients:
            await c.stop()
        hs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def sandbox_cost(n: int) -> None:
    """Start cost of a command: bare, the old bwrap line, the hardened sandbox; the old
    line runs through the same harness (``sandbox.run``'s pipe, reader thread, process
    group) with the hardened parts switched off, so the difference is the hardening."""
    from meshagents.apps.device_agent import sandbox

    true = shutil.which("true", path=sandbox.SAFE_PATH) or "/bin/true"
    bwrap = sandbox.find_bwrap()
    if bwrap is None:
        print("sandbox start cost: bubblewrap not installed")
        return
    old = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
           "--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session", "--", true]  # fmt: skip
    plan = sandbox.SandboxPlan([true], cwd="/tmp", readable=("/tmp",))
    from meshagents.apps.device_agent import pidscgroup, prearm, seccomp

    # The hardened parts switched off by replacing them in the modules' namespaces.
    off: list[tuple[dict[str, Any], str, Any]] = [
        (vars(sandbox), "wrap", lambda *a, **k: list(old)),
        (vars(pidscgroup), "make", lambda: None),
        (vars(sandbox), "_prlimit_prefix", lambda timeout_s: []),
        (vars(seccomp), "program", lambda machine=None: None),
    ]

    def run_old() -> Any:
        saved = [(ns, name, ns[name]) for ns, name, _ in off]
        for ns, name, value in off:
            ns[name] = value
        try:
            return sandbox.run(plan, timeout_s=10, output_cap=1024)
        finally:
            for ns, name, value in saved:
                ns[name] = value

    times: dict[str, list[float]] = {"bare": [], "old": [], "hardened": [], "prearmed": []}
    env = sandbox.scrubbed_env()
    for _ in range(n):  # interleaved: the machine's load hits all three alike
        t0 = time.perf_counter()
        subprocess.run([true], env=env, check=True)
        times["bare"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        res = run_old()
        times["old"].append((time.perf_counter() - t0) * 1000)
        assert res.exit_code == 0, res
        t0 = time.perf_counter()
        res = sandbox.run(plan, timeout_s=10, output_cap=1024)
        times["hardened"].append((time.perf_counter() - t0) * 1000)
        assert res.exit_code == 0 and res.error is None, res
        prearm.enable()  # as the agent runs it: a gate armed between commands
        try:
            armed = prearm.wait_armed(10)
            t0 = time.perf_counter()
            res = sandbox.run(plan, timeout_s=10, output_cap=1024)
            times["prearmed"].append((time.perf_counter() - t0) * 1000)
        finally:
            prearm.disable()
        assert res.exit_code == 0 and res.error is None, res
    load = os.getloadavg()[0]
    print(f"sandbox start cost, {n} runs each, interleaved (load {load:.1f} on {os.cpu_count()} CPUs)")
    print(summary("sandbox start: /bin/true bare", times["bare"]))
    print(summary("sandbox start: old bwrap --ro-bind / /", times["old"]))
    print(summary("sandbox start: hardened sandbox", times["hardened"]))
    gated = "pre-armed gate" if armed else "pre-armed: NO GATE (no pids cgroup)"
    print(summary(f"sandbox start: hardened, {gated}", times["prearmed"]))
    added = pct(times["hardened"], 50) - pct(times["old"], 50)
    print(f"{'hardened minus old (p50)':<44} {added:+.1f} ms per command   (aim <= +10 ms)")
    print(f"{'hardened minus old (fastest run)':<44} {min(times['hardened']) - min(times['old']):+.1f} ms")


def main() -> None:
    ns = benchcli.options(
        __doc__.splitlines()[0] if __doc__ else None,
        requests=(int, 50), sandbox_only=(bool, False, "only the sandbox start cost"),
        agent_python=(str, sys.executable, "the agent's interpreter (an installed venv's python; cwd /)"),
        no_sandbox_cost=(bool, False, "skip the sandbox start cost"),
    )
    global AGENT_PYTHON
    AGENT_PYTHON = ns.agent_python
    if not ns.no_sandbox_cost:
        sandbox_cost(max(ns.requests, 20))
    if not ns.sandbox_only:
        asyncio.run(run(ns.requests))


if __name__ == "__main__":
    main()
