"""sandbox.run's own contract, on real bubblewrap and in the weak fallback: the exit code and
the merged output; a timeout kills the process group and says so; output beyond the cap is
counted, not kept; ``on_output`` sees what is kept as it comes; ``on_start``'s kill ends
the run; a program that closes its output early is still waited for; in the fallback a
leftover that keeps the pipe open is killed, not waited on. (The run waits on a pidfd
and the pipe in one thread: these are the cases that change when it does.) Each case runs
three ways: bubblewrap started by the run, bubblewrap exec'd by a pre-armed gate already in
its cgroup (prearm.py, as the agent runs it), and the weak fallback; then the gate's own
cases: it is really the run's cgroup, a dead gate falls back, a dead agent's cgroup is swept."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from meshagents.apps.device_agent import pidscgroup, prearm, sandbox
from tests.testbed.host import require_binary, require_root

pytestmark = pytest.mark.integration

SH = shutil.which("sh", path=sandbox.SAFE_PATH) or "/bin/sh"


@pytest.fixture(params=["bwrap", "prearmed", "weak"])
def use_bwrap(request: pytest.FixtureRequest) -> Iterator[bool]:
    if request.param == "weak":
        yield False
        return
    require_root()
    require_binary("bwrap")
    if request.param == "bwrap":
        yield True
        return
    with armed():
        yield True


class armed:
    """The agent's pool enabled, a gate armed: the next bwrap run goes through it."""

    def __enter__(self) -> None:
        if pidscgroup.root() is None:
            pytest.fail("no writable pids cgroup on this machine: a gate cannot be armed")
        prearm.enable()
        assert prearm.wait_armed(20), "no gate was armed"

    def __exit__(self, *exc: object) -> None:
        prearm.disable()


def _run(script: str, use_bwrap: bool, **kw: object) -> sandbox.RunResult:
    opts: dict[str, object] = {"timeout_s": 20, "output_cap": 4096, **kw}
    return sandbox.run(sandbox.SandboxPlan([SH, "-c", script]), use_bwrap=use_bwrap, **opts)  # type: ignore[arg-type]


def test_exit_code_and_merged_output(use_bwrap: bool) -> None:
    r = _run("echo out; echo err >&2; exit 3", use_bwrap)
    assert (r.exit_code, r.timed_out, r.error, r.sandboxed) == (3, False, None, use_bwrap)
    assert sorted(r.output.split()) == [b"err", b"out"]


def test_a_timeout_kills_the_group_and_says_so(use_bwrap: bool) -> None:
    r = _run("echo started; sleep 60", use_bwrap, timeout_s=1)
    assert r.timed_out is True and r.exit_code is not None and r.exit_code != 0
    assert r.output == b"started\n"


def test_output_beyond_the_cap_is_counted_not_kept(use_bwrap: bool) -> None:
    seen: list[bytes] = []
    r = _run("head -c 200000 /dev/zero", use_bwrap, output_cap=1000, on_output=seen.append)
    assert (r.exit_code, len(r.output), r.total_bytes, r.truncated) == (0, 1000, 200000, True)
    assert b"".join(seen) == r.output


def test_on_start_kill_ends_the_run(use_bwrap: bool) -> None:
    kills: list[Callable[[], None]] = []

    def on_output(chunk: bytes) -> None:
        kills[0]()  # the first output line: !cancel

    r = _run("echo go; sleep 60", use_bwrap, on_start=kills.append, on_output=on_output)
    assert r.timed_out is False and r.exit_code is not None and r.exit_code != 0
    assert r.output == b"go\n"


def test_a_program_that_closes_its_output_early_is_still_waited_for(use_bwrap: bool) -> None:
    r = _run("echo early; exec >&- 2>&-; sleep 1; exit 7", use_bwrap)
    assert (r.exit_code, r.output, r.timed_out) == (7, b"early\n", False)
    assert r.duration_ms >= 1000


def test_the_rlimits_hold(use_bwrap: bool) -> None:
    r = _run("ulimit -n; ulimit -c; ulimit -t; ulimit -v", use_bwrap, timeout_s=7)
    assert r.exit_code == 0, r
    assert r.output.split() == [b"256", b"0", b"8", str(sandbox.MEMORY_BYTES // 1024).encode()]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_weak_mode_kills_a_leftover_that_keeps_the_pipe() -> None:
    r = _run("sleep 60 & echo $!", False)
    assert r.exit_code == 0 and r.timed_out is False
    leftover = int(r.output.split()[0])
    # SIGKILLed with the group when the shell exited (delivered asynchronously: on a busy
    # machine the process may take a moment to die); then reaped by init, or a zombie
    deadline = time.monotonic() + 10
    while _state(leftover) not in ("gone", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(leftover) in ("gone", "Z", "X")


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup", encoding="ascii") as fh:
        lines = [line for line in fh if ":pids:" in line or line.startswith("0::")]
    return lines[0].split(":", 2)[2].strip()


def test_a_gate_runs_the_sandbox_inside_its_own_fresh_cgroup() -> None:
    require_root()
    require_binary("bwrap")
    seen: list[str] = []
    with armed():
        gate = prearm.POOL._ready
        assert gate is not None
        before = set(_cgroup_of(gate.proc.pid).split("/"))
        r = _run("echo $$; sleep 0.5", True, on_start=lambda kill: seen.append(_cgroup_of(gate.proc.pid)))
        assert prearm.POOL._ready is not gate  # taken by the run, not re-used
    assert r.exit_code == 0, r
    assert seen and seen[0].endswith(gate.cgroup.name) and gate.cgroup.name in before  # bwrap itself is in it
    assert seen[0] != _cgroup_of(os.getpid())
    deadline = time.monotonic() + 10  # removed after the run, off its path
    while gate.cgroup.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not gate.cgroup.exists()


def test_an_answer_arms_the_next_gate_without_the_quiet_time(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()
    require_binary("bwrap")
    monkeypatch.setattr(prearm, "ARM_DELAY_S", 60.0)  # the quiet-time fallback, out of reach here
    with armed():
        r = _run("echo one", True)  # takes the armed gate
        assert (r.exit_code, r.output) == (0, b"one\n")
        assert not prearm.wait_armed(1)  # no answer announced: the next waits for the quiet time
        prearm.answered()  # the agent sent the answer
        assert prearm.wait_armed(20), "the answer did not arm the next gate"


def test_a_dead_gate_falls_back_to_a_normal_start() -> None:
    require_root()
    require_binary("bwrap")
    with armed():
        gate = prearm.POOL._ready
        assert gate is not None
        gate.proc.kill()
        gate.proc.wait()
        r = _run("echo fine", True)
    assert (r.exit_code, r.output, r.sandboxed) == (0, b"fine\n", True)
    assert not gate.cgroup.exists()


def test_the_cgroup_a_killed_agent_left_is_swept() -> None:
    require_root()
    root = pidscgroup.root()
    if root is None:
        pytest.fail("no writable pids cgroup on this machine")
    proc = subprocess.Popen(["true"])  # a pid that existed and is gone
    proc.wait()
    left = root / pidscgroup.PARENT / f"run-{proc.pid}-deadbeef"
    left.mkdir(parents=True)
    young = left.with_name(f"run-{proc.pid}-cafebabe")
    young.mkdir()
    old = time.time() - 2 * pidscgroup.SWEEP_AGE_S
    os.utime(left, (old, old))
    mine = pidscgroup.make()
    assert mine is not None
    try:
        assert pidscgroup.sweep() >= 1
        assert not left.exists() and mine.exists()  # ours (a live pid) stays
        assert young.exists()  # a dead pid's, but made just now: maybe another PID namespace's
    finally:
        pidscgroup.drop(mine)
        for path in (left, young):
            if path.exists():
                path.rmdir()
