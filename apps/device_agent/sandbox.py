"""Run one argv under the sandbox: bubblewrap where present, a weaker fallback elsewhere.

    plan = SandboxPlan(argv, cwd="/", writable=(...), network=False)
    wrap(plan, bwrap="/usr/bin/bwrap" | None) -> list[str]     # pure: the full command line
    run(plan, *, timeout_s, output_cap, use_bwrap=True) -> RunResult

Under bubblewrap (Debian ``bubblewrap``): ``--ro-bind / /`` (the whole system read-only),
``--dev /dev``, ``--proc /proc``, a private ``--tmpfs /tmp``, then ``--bind`` for each
writable path that exists (the capability's path prefixes and cwd — nothing else can be
written), ``--unshare-net`` unless the capability allows the network, ``--unshare-pid``,
``--die-with-parent`` and ``--new-session`` (no TIOCSTI into the agent's terminal).

Fallback (no bwrap: Termux, WSL without user namespaces, macOS, or ``sandbox: false``):
rlimits (CPU seconds, core 0, file size 1 GiB, 256 open files) and a process group of
its own; no file system or network isolation. docs/device_agent.md says so plainly.

Both ways: argv only, never a shell; a scrubbed environment (fixed PATH, C.UTF-8, no
inherited variables); stdout and stderr merged; output beyond ``output_cap`` bytes is
read and dropped (so the child never blocks on a full pipe) and the result says how
much was dropped; on timeout the whole process group is killed (under bwrap, killing
bwrap ends its PID namespace, and --die-with-parent covers the rest).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 65536


@dataclass(frozen=True)
class SandboxPlan:
    argv: list[str]
    cwd: str = "/"
    writable: tuple[str, ...] = ()
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None
    output: bytes
    truncated: bool
    total_bytes: int
    timed_out: bool
    duration_ms: int
    sandboxed: bool
    error: str | None = None


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment a child sees: nothing is inherited from the agent."""
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp", "TERM": "dumb"}
    env.update(extra or {})
    return env


def find_bwrap() -> str | None:
    return shutil.which("bwrap", path=SAFE_PATH)


def wrap(plan: SandboxPlan, bwrap: str | None) -> list[str]:
    """The command line that runs ``plan.argv`` (under ``bwrap`` when given)."""
    if bwrap is None:
        return list(plan.argv)
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    seen: set[str] = set()
    for path in plan.writable:
        if path in seen or path == "/" or (not os.path.isdir(path) and not os.path.isfile(path)):
            continue
        seen.add(path)
        cmd += ["--bind", path, path]
    if not plan.network:
        cmd.append("--unshare-net")
    cmd += ["--unshare-pid", "--die-with-parent", "--new-session", "--chdir", plan.cwd, "--"]
    return cmd + list(plan.argv)


def _limits(timeout_s: int) -> None:  # runs in the child between fork and exec
    import resource

    cpu = max(1, timeout_s) + 1
    for res, value in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 1 << 30),
        (resource.RLIMIT_NOFILE, 256),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


def run(
    plan: SandboxPlan,
    *,
    timeout_s: int,
    output_cap: int,
    use_bwrap: bool = True,
    on_output: Callable[[bytes], None] | None = None,
    on_start: Callable[[Callable[[], None]], None] | None = None,
) -> RunResult:
    """Run ``plan``; never raises for a failing program (``error`` says why it did not start).

    ``on_output(chunk)`` sees the kept output as it comes (live output, from the reader
    thread); ``on_start(kill)`` gets a function that kills the process group (!cancel)."""
    bwrap = find_bwrap() if use_bwrap else None
    cmd = wrap(plan, bwrap)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=plan.cwd if bwrap is None else "/",
            env=scrubbed_env(plan.env),
            start_new_session=True,  # its own process group, killed as one on timeout
            close_fds=True,
            preexec_fn=None if bwrap is not None else (lambda: _limits(timeout_s)),
        )
    except OSError as exc:
        return RunResult(None, b"", False, 0, False, 0, bwrap is not None, f"cannot start: {exc.strerror}")
    if on_start is not None:
        on_start(lambda: _kill_group(proc))
    kept = bytearray()
    total = 0

    def reader() -> None:
        nonlocal total
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                return
            total += len(chunk)
            room = output_cap - len(kept)
            if room > 0:
                kept.extend(chunk[:room])
                if on_output is not None:
                    on_output(chunk[:room])

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    _kill_group(proc)  # leftovers that kept the group (fallback mode) go with it
    thread.join(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    return RunResult(
        exit_code=proc.returncode,
        output=bytes(kept),
        truncated=total > len(kept),
        total_bytes=total,
        timed_out=timed_out,
        duration_ms=int((time.monotonic() - t0) * 1000),
        sandboxed=bwrap is not None,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
