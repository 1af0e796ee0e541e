"""Run one argv under the sandbox: a least-privilege bubblewrap, or the weak fallback.

    plan = SandboxPlan(argv, cwd="/", readable=(...), writable=(...), visible=(...),
                       network=False, hidden=(...), devices=(...))
    wrap(plan, bwrap, *, seccomp_fd=None) -> list[str]   # the full command line
    run(plan, *, timeout_s, output_cap, use_bwrap=True) -> RunResult
    probe() -> str | None          # None: the hardened sandbox works here; else why not
    find_bwrap() -> str | None     # from meshagents.bwrap, where the enroll pre-checks look too

Under bubblewrap the child sees only what it needs (a boundary on its own, whatever a
check before it missed):

- the system's programs and libraries read-only: ``/usr``, ``/bin``, ``/sbin``,
  ``/lib*`` (bound, or recreated as the symlinks they are on a merged-/usr system), the
  whitelisted program itself when it lives elsewhere, and a few files of ``/etc``
  (:data:`ETC_FILES`: the loader cache, passwd/group for names, alternatives, time
  zone; never ``shadow``). With network: the resolver files too.
- the capability's path prefixes read-only, or read-write for a capability that writes
  (``limits.write: 1``; ``fs.write`` does not use this, see below); ``visible`` paths
  read-only (signed into the manifest, e.g. ``/run/systemd`` for ``systemctl``);
  a private ``/tmp`` unless a prefix is ``/tmp``; a fresh ``/proc`` and minimal ``/dev``;
  nothing else: no ``/root``, no ``/home`` but the prefixes, no ``/run`` (so no systemd
  or D-Bus socket), no ``/sys``, no agent state. ``hidden`` paths (the agent's state,
  config, audit store and keys) are masked with an empty tmpfs even if a bind covers them.
- namespaces: user (``--unshare-user --uid 65534 --gid 65534``), PID (so ``/proc``
  shows the sandbox alone: the host's ``/proc/<pid>/root`` links never appear), IPC,
  UTS, cgroup, network (unless the capability allows it); ``--cap-drop ALL``,
  ``--new-session`` (no TIOCSTI into the agent's terminal), ``--die-with-parent``;
  bubblewrap sets ``PR_SET_NO_NEW_PRIVS``; the seccomp filter of
  :mod:`meshagents.apps.device_agent.seccomp` through ``--seccomp FD``.
- limits: rlimits set on bubblewrap by util-linux ``prlimit`` (which then execs it) and
  inherited (CPU seconds, 1 GiB address space, 1 GiB files, 256 open files, no core
  dumps); a ``preexec_fn`` only where ``prlimit`` is missing (it makes Python fork the
  whole agent: ~20 ms per command). Where a cgroup pids controller is writable (cgroup
  v1 ``/sys/fs/cgroup/pids`` or v2) a per-run cgroup with ``pids.max`` =
  :data:`MAX_PIDS`, joined by the sandbox's first process while bubblewrap waits on
  ``--block-fd`` (its pid comes from ``--info-fd``), before the command is forked;
  in the agent, a pre-armed gate already in its fresh cgroup execs the whole command line
  instead (:mod:`prearm`: the join, ~12 ms on cgroup v1, is paid before the request).
  Not ``RLIMIT_NPROC``: a root agent's child is uid 0 outside its user namespace,
  which the kernel exempts, and for a non-root agent it would count every process of
  that user, not the sandbox's.

Fallback (``sandbox: weak`` in the config, the only way to run without bubblewrap:
Termux, WSL without user namespaces, macOS): rlimits and a process group of its own;
no file system, uid or network isolation. The agent says so in ``!help`` and its
status. docs/device_agent.md says so plainly.

Both ways: argv only, never a shell; a scrubbed environment (fixed PATH, C.UTF-8, no
inherited variables); stdout and stderr merged; output beyond ``output_cap`` bytes is
read and dropped (so the child never blocks on a full pipe) and the result says how
much was dropped; on timeout the whole process group is killed (under bwrap, killing
bwrap ends its PID namespace, and --die-with-parent covers the rest).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import select
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meshagents.apps.device_agent import pidscgroup, prearm, seccomp

# Re-exported (``X as X``): the capabilities and bench/ reach them as sandbox.SAFE_PATH, sandbox.find_bwrap.
from meshagents.bwrap import SAFE_PATH as SAFE_PATH
from meshagents.bwrap import find_bwrap as find_bwrap

CHUNK = 65536
SANDBOX_UID = 65534  # "nobody" inside the user namespace
MAX_PIDS = pidscgroup.MAX_PIDS
INFO_TIMEOUT_S = 10.0  # how long to wait for bubblewrap's --info-fd before giving up on the cgroup
MEMORY_BYTES = 1 << 30
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
)
NETWORK_ETC = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
)


@dataclass(frozen=True)
class SandboxPlan:
    argv: list[str]
    cwd: str = "/"
    writable: tuple[str, ...] = ()
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)
    readable: tuple[str, ...] = ()
    visible: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()  # device nodes passed through (camera.snapshot: /dev/video0)


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


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _covered(path: str, by: str) -> bool:
    return by == "/" or path == by or path.startswith(by.rstrip("/") + "/")


def wrap(
    plan: SandboxPlan,
    bwrap: str | None,
    *,
    seccomp_fd: int | None = None,
    exists: Callable[[str], bool] = _exists,
    isdir: Callable[[str], bool] = os.path.isdir,
) -> list[str]:
    """The command line that runs ``plan.argv`` (under ``bwrap`` when given)."""
    if bwrap is None:
        return list(plan.argv)
    cmd = [bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    cmd += [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
    ]
    if not plan.network:
        cmd.append("--unshare-net")
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif exists(d):
            cmd += ["--ro-bind", d, d]
    exe = plan.argv[0] if plan.argv else ""
    if exe.startswith("/") and not any(_covered(exe, d) for d in SYSTEM_DIRS) and exists(exe):
        cmd += ["--ro-bind", os.path.realpath(exe), exe]
    for f in ETC_FILES + (NETWORK_ETC if plan.network else ()):
        if exists(f):
            cmd += ["--ro-bind", f, f]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    for node in plan.devices:
        if exists(node):
            cmd += ["--dev-bind", node, node]
    mounts: list[tuple[str, str]] = []  # (path, how): parents before children, rw after ro
    for p in plan.readable + plan.visible:
        mounts.append((p, "--ro-bind"))
    for p in plan.writable:
        mounts.append((p, "--bind"))
    if not any(_covered("/tmp", p) for p, _ in mounts):
        cmd += ["--tmpfs", "/tmp"]
    seen: set[tuple[str, str]] = set()
    for path, how in sorted(mounts, key=lambda m: (m[0].count("/"), m[1] == "--bind", m[0])):
        if (path, how) in seen or path == "/" or not exists(path):
            continue
        seen.add((path, how))
        cmd += [how, path, path]
    masked: list[str] = []
    for path in sorted(plan.hidden, key=lambda p: p.count("/")):
        # Only where a bind made it visible; a directory gets an empty tmpfs, a file /dev/null
        # (nothing inside an already masked directory: its mount point would reappear).
        if any(_covered(path, m) for m in masked) or not exists(path):
            continue
        if any(_covered(path, p) for p, _ in mounts):
            cmd += ["--tmpfs", path] if isdir(path) else ["--ro-bind", "/dev/null", path]
            masked.append(path)
    cmd += ["--cap-drop", "ALL", "--new-session", "--die-with-parent"]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    cmd += ["--chdir", plan.cwd, "--"]
    return cmd + list(plan.argv)


RLIMITS = "--core=0", "--fsize=1073741824", "--nofile=256", f"--as={MEMORY_BYTES}"


def rlimits(timeout_s: int) -> list[tuple[int, int]]:
    """(resource, limit) pairs a run gets: what ``prlimit`` sets from :data:`RLIMITS`."""
    import resource

    return [
        (resource.RLIMIT_CPU, max(1, timeout_s) + 1),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 1 << 30),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_AS, MEMORY_BYTES),
    ]


def _limits(timeout_s: int) -> None:  # fallback mode: in the child, between fork and exec
    import resource

    for res, value in rlimits(timeout_s):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


def _prlimit_prefix(timeout_s: int) -> list[str] | None:
    """util-linux ``prlimit`` sets the limits and execs bubblewrap: no ``preexec_fn``,
    whose fork of the whole agent process cost ~20 ms per command here."""
    prlimit = shutil.which("prlimit", path=SAFE_PATH)
    if prlimit is None:
        return None
    return [prlimit, f"--cpu={max(1, timeout_s) + 1}", *RLIMITS, "--"]


def _attach(info_r: int, block_w: int, cgroup: Path | None) -> None:
    """Move the sandbox's first process into ``cgroup`` while bubblewrap waits on its
    block fd (``--block-fd``: before it forks the command), then let it go on."""
    try:
        raw = b""
        while cgroup is not None and not raw.rstrip().endswith(b"}"):
            ready, _, _ = select.select([info_r], [], [], INFO_TIMEOUT_S)
            if not ready:
                break  # bubblewrap never said its child's pid: let it run, unlimited but bounded in time
            chunk = os.read(info_r, 4096)
            if not chunk:
                break
            raw += chunk
        if cgroup is not None and raw:
            import json

            pid = int(json.loads(raw)["child-pid"])
            pidscgroup.join(cgroup, pid)
    except (OSError, ValueError, KeyError):
        pass  # bubblewrap failed before its child ran: its own error reaches the output
    finally:
        with contextlib.suppress(OSError):
            os.write(block_w, b"x")
        for fd in (info_r, block_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def probe() -> str | None:
    """None when the hardened sandbox runs here; else the reason it does not."""
    bwrap = find_bwrap()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    true = shutil.which("true", path=SAFE_PATH) or "/bin/true"
    res = run(SandboxPlan([true]), timeout_s=10, output_cap=4096)
    if res.error is not None or res.exit_code != 0:
        why = res.error or res.output.decode(errors="replace")[:300]
        return f"bubblewrap cannot start a sandbox here: {why}"
    return None


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
    t0 = time.monotonic()
    if use_bwrap and bwrap is None:
        return RunResult(None, b"", False, 0, False, 0, True, "cannot start: bubblewrap is not installed")
    gate = prearm.take() if bwrap is not None else None
    proc = _through_gate(gate, plan, bwrap, timeout_s) if gate is not None else None
    cgroup: Path | None = None
    if proc is None:
        started = _start(plan, bwrap, timeout_s)
        if isinstance(started, str):
            return RunResult(None, b"", False, 0, False, 0, bwrap is not None, started)
        proc, cgroup = started
    if on_start is not None:
        on_start(lambda: _kill_group(proc))
    kept, total, timed_out = _collect(proc, timeout_s, output_cap, on_output)
    if gate is not None and proc is gate.proc:
        prearm.retire(gate.cgroup)
    else:
        pidscgroup.drop(cgroup)
    return RunResult(
        exit_code=proc.returncode,
        output=bytes(kept),
        truncated=total > len(kept),
        total_bytes=total,
        timed_out=timed_out,
        duration_ms=int((time.monotonic() - t0) * 1000),
        sandboxed=bwrap is not None,
    )


def _through_gate(
    gate: prearm.Gate, plan: SandboxPlan, bwrap: str | None, timeout_s: int
) -> subprocess.Popen[bytes] | None:
    """Start ``plan`` in a pre-armed gate, already in its cgroup (no join on this path);
    None when the gate cannot take it (then ``_start`` does)."""
    cmd = wrap(plan, bwrap, seccomp_fd=gate.seccomp_fd)
    return gate.launch(cmd, scrubbed_env(plan.env), rlimits(timeout_s))  # the gate sets them: no prlimit exec


def _start(
    plan: SandboxPlan, bwrap: str | None, timeout_s: int
) -> tuple[subprocess.Popen[bytes], Path | None] | str:
    """Start ``plan`` here and move its sandbox into a fresh cgroup: (process, cgroup), or
    why it could not start."""
    filter_fd: int | None = None
    cgroup: Path | None = None
    if bwrap is not None:
        filter_fd = seccomp.filter_fd()
        cgroup = pidscgroup.make()
    cmd = wrap(plan, bwrap, seccomp_fd=filter_fd)
    fds: list[int] = [] if filter_fd is None else [filter_fd]
    sync: tuple[int, int, int, int] | None = None  # info r/w, block r/w
    if cgroup is not None:
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        sync = (info_r, info_w, block_r, block_w)
        fds += [info_w, block_r]
        cmd[1:1] = ["--info-fd", str(info_w), "--block-fd", str(block_r)]
    prefix = _prlimit_prefix(timeout_s) if bwrap is not None else None
    try:
        proc = subprocess.Popen(
            (prefix or []) + cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=plan.cwd if bwrap is None else "/",
            env=scrubbed_env(plan.env),
            start_new_session=True,  # its own process group, killed as one on timeout
            close_fds=True,
            pass_fds=tuple(fds),
            preexec_fn=None if prefix is not None else (lambda: _limits(timeout_s)),
        )
    except OSError as exc:
        pidscgroup.drop(cgroup)
        return f"cannot start: {exc.strerror}"
    finally:
        for fd in fds:
            os.close(fd)
        if sync is not None:
            _attach(sync[0], sync[3], cgroup)
    return proc, cgroup


LINGER_S = 5.0  # after the exit: how long the pipe is read on for what a leftover still writes


def _collect(
    proc: subprocess.Popen[bytes], timeout_s: int, output_cap: int,
    on_output: Callable[[bytes], None] | None,
) -> tuple[bytearray, int, bool]:
    """Read the merged output and wait for the exit in this thread, woken by whichever comes:
    the pipe or the process's pidfd. ``Popen.wait(timeout=)`` polls with sleeps that double
    from 0.5 ms (5.6 ms of sleeping per ``ls`` here, on every command), and a reader thread
    cost ~1.5 ms to start; where ``pidfd_open`` is missing (Linux < 5.3) the exit is polled
    every 10 ms instead. On timeout the process group is killed; after the exit, leftovers
    that kept the group (fallback mode) are killed and the pipe is read to its end, for at
    most :data:`LINGER_S`. Returns (kept output, bytes seen, timed out)."""
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    kept, total, timed_out = bytearray(), 0, False
    sel = selectors.DefaultSelector()
    sel.register(out, selectors.EVENT_READ)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    eof = exited = False

    def ended() -> float:
        """The process is reaped: stop watching it, kill what kept its group; the linger's end."""
        if pidfd is not None and pidfd in sel.get_map():
            sel.unregister(pidfd)
        _kill_group(proc)  # leftovers that kept the group (fallback mode) go with it
        return time.monotonic() + LINGER_S

    try:
        until = deadline
        while not (eof and exited):
            wait = until - time.monotonic()
            if wait <= 0:
                if exited:
                    break  # a leftover still holds the pipe after LINGER_S: stop reading
                timed_out = True
                _kill_group(proc)
                proc.wait()
                exited, until = True, ended()
                continue
            if pidfd is None and not exited:
                wait = min(wait, 0.01)
            for key, _ in sel.select(wait):
                if key.fd == out:
                    chunk = os.read(out, CHUNK)
                    if not chunk:
                        eof = True
                        sel.unregister(out)
                        continue
                    total += len(chunk)
                    room = output_cap - len(kept)
                    if room > 0:
                        kept.extend(chunk[:room])
                        if on_output is not None:
                            on_output(chunk[:room])
                else:  # the pidfd: the process has ended
                    proc.wait()
                    exited, until = True, ended()
            if pidfd is None and not exited and proc.poll() is not None:
                exited, until = True, ended()
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
    return kept, total, timed_out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def parent_dirs(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]`` (for callers that bind a path's parents)."""
    parts = [p for p in path.split("/") if p]
    return [posixpath.join("/", *parts[:i]) for i in range(1, len(parts))]
