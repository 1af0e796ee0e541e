"""Pre-armed sandbox launchers: a process already in a fresh pids cgroup, waiting for the
command line it is to become.

    enable()  / disable()          # the agent's start / stop (counted: several agents per process)
    take() -> Gate | None          # the armed gate, or None (then sandbox.run joins the slow way)
    answered()                     # the agent sent an answer: arm the next gate 50 ms later
    gate.launch(argv, env, rlimits) -> Popen | None   # exec argv in the gate; None: it is gone
    gate.cgroup, gate.seccomp_fd   # its run cgroup; the seccomp filter's fd inside the gate

Why: moving a process into a cgroup (a ``cgroup.procs`` write) waits for an RCU grace period
on cgroup v1 — 12 ms of every command's sandbox start here, on the critical path, because
``sandbox.run`` could only move bubblewrap's child once it existed. A gate pays that ahead:
a small Python (``-I -S``, nothing inherited) started with the merged output pipe, its own
session and the seccomp filter's memfd, moved into a cgroup of its own, then blocked reading
its control pipe. ``launch`` writes the argv, the environment and the rlimits there and closes it; the
gate sets the limits (as ``prlimit`` does on the other path, without its exec) and
``execve``s bubblewrap — so bubblewrap, its namespaces
and everything it starts are in the cgroup from their first instruction (the ``pids.max``
limit and the group kill hold as before; ``clone3(CLONE_INTO_CGROUP)`` would do the same on a
pure cgroup v2 host).

One gate is kept armed; taking it wakes one long-lived thread that arms the next. That thread
forks every gate on purpose: bubblewrap's ``--die-with-parent`` is ``PR_SET_PDEATHSIG``, which
fires when the *thread* that forked the process ends, so it must outlive every gate it made
(it is parked, never ended, when the last agent disables the pool). A gate whose agent dies
reads end-of-file and exits; :func:`pidscgroup.sweep` removes the cgroup it leaves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from meshagents.apps.device_agent import pidscgroup, seccomp

log = logging.getLogger("meshagents.device_agent.prearm")

# The gate: everything it imports is loaded before it blocks; after the read, one execve.
GATE = r"""
import json, os, resource, sys
fd = int(sys.argv[1])
os.close(int(sys.argv[2]))  # started: the armer's read of the other end ends
buf = bytearray()
while True:
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    buf += chunk
os.close(fd)
if not buf:
    os._exit(0)
msg = json.loads(buf)
os.chdir("/")
try:
    for res, value in msg["rlimits"]:
        resource.setrlimit(res, (value, value))
    os.execve(msg["argv"][0], msg["argv"], msg["env"])
except (OSError, ValueError) as exc:
    os.write(2, ("cannot start: %s\n" % (getattr(exc, "strerror", None) or exc)).encode())
    os._exit(127)
"""
GATE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# A gate is armed just after the agent has sent the command's answer (``answered``), or this long
# after the last command started or ended when no answer is announced (a run outside the
# agent, an answer that failed): its Python start (~10 ms of CPU) would otherwise compete
# with the answer being encrypted and sent. Not a fixed quiet time alone: commands less than
# that apart (a burst, a script, 10 per second) would each find no gate and take the slow way.
ARM_DELAY_S = 0.25
# After an answer was sent, the homeserver still hands it to the room's other members for
# some ms (its sync fan-out): the gate's start waits that long, not the whole quiet time.
ANSWER_SETTLE_S = 0.05
START_TIMEOUT_S = 10.0  # a gate's Python start, at most


@dataclass
class Gate:
    proc: subprocess.Popen[bytes]
    control: int  # the write end of the gate's control pipe
    cgroup: Path
    seccomp_fd: int | None  # the filter's fd number in the gate (argv for bubblewrap's --seccomp)

    def launch(
        self, argv: list[str], env: dict[str, str], rlimits: list[tuple[int, int]]
    ) -> subprocess.Popen[bytes] | None:
        """Set ``rlimits`` (resource, limit) and become ``argv``; None when the gate died
        meanwhile (the caller starts it the slow way)."""
        if self.proc.poll() is not None:
            self.discard()
            return None
        data = json.dumps({"argv": argv, "env": env, "rlimits": rlimits}).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.control, view):]
        except OSError:
            self.discard()
            return None
        os.close(self.control)
        self.control = -1
        return self.proc

    def discard(self) -> None:
        """An unused gate: end it and remove its cgroup."""
        if self.control >= 0:
            with contextlib.suppress(OSError):
                os.close(self.control)  # end-of-file: the gate exits by itself
            self.control = -1
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        pidscgroup.drop(self.cgroup)


def arm(python: str = sys.executable) -> Gate | None:
    """A gate in a fresh cgroup, or None where none can be made (no writable pids cgroup)."""
    cgroup = pidscgroup.make()
    if cgroup is None:
        return None
    filter_fd = seccomp.filter_fd()
    control_r, control_w = os.pipe()
    started_r, started_w = os.pipe()
    fds = (control_r, started_w) if filter_fd is None else (control_r, started_w, filter_fd)
    try:
        proc = subprocess.Popen(
            [python, "-I", "-S", "-c", GATE, str(control_r), str(started_w)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd="/",
            env=GATE_ENV,
            start_new_session=True,  # its own process group, killed as one on timeout
            close_fds=True,
            pass_fds=fds,
        )
    except OSError as exc:
        os.close(control_w)
        os.close(started_r)
        pidscgroup.drop(cgroup)
        log.warning("cannot start a sandbox gate (%s): commands start the slow way", exc.strerror)
        return None
    finally:
        for fd in fds:
            os.close(fd)
    gate = Gate(proc, control_w, cgroup, filter_fd)
    try:
        pidscgroup.join(cgroup, proc.pid)
    except OSError as exc:
        os.close(started_r)
        gate.discard()
        log.warning("cannot move a sandbox gate into %s (%s)", cgroup, exc.strerror)
        return None
    # Armed means waiting on its pipe: a gate handed out while its Python still starts
    # would make that command wait for the start (~10 ms).
    try:
        ready, _, _ = select.select([started_r], [], [], START_TIMEOUT_S)
    finally:
        os.close(started_r)
    if not ready:
        gate.discard()
        log.warning("a sandbox gate did not start within %.0f s", START_TIMEOUT_S)
        return None
    return gate


class Pool:
    """One armed gate at a time, refilled by one thread that lives as long as the process."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._lock = threading.Lock()
        self._ready: Gate | None = None
        self._wanted = threading.Event()
        self._users = 0
        self._failed = False
        self._thread: threading.Thread | None = None
        self._armed = threading.Condition(self._lock)
        self._retired: list[Path] = []  # run cgroups to remove, off the command's path
        self._arm_at = 0.0  # monotonic: arm the next gate no sooner (see ARM_DELAY_S)

    def enable(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            self._failed = False
            self._arm_at = 0.0
            if self._thread is None:
                pidscgroup.sweep()
                self._thread = threading.Thread(target=self._run, name="sandbox-prearm", daemon=True)
                self._thread.start()
        self._wanted.set()

    def disable(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            gate, self._ready = self._ready, None
        if gate is not None:
            gate.discard()

    def take(self) -> Gate | None:
        with self._lock:
            if not self._users:
                return None
            gate, self._ready = self._ready, None
            self._arm_at = time.monotonic() + ARM_DELAY_S
        self._wanted.set()
        return gate

    def answered(self) -> None:
        """The agent sent a command's answer: arm the next gate once the answer has been handed
        to the room (ANSWER_SETTLE_S), not after the whole quiet time."""
        with self._lock:
            if not self._users:
                return
            self._arm_at = time.monotonic() + ANSWER_SETTLE_S
        self._wanted.set()

    def retire(self, cgroup: Path) -> None:
        """Remove a finished run's cgroup in the pool's thread: the kernel frees a cgroup a
        few ms after its last process is reaped (the rmdir's waits, ~4 ms here) — time the
        answer need not wait for. Without the thread (pool never enabled) it is removed now."""
        with self._lock:
            queued = self._thread is not None
            if queued:
                self._retired.append(cgroup)
                self._arm_at = time.monotonic() + ARM_DELAY_S
        if queued:
            self._wanted.set()
        else:
            pidscgroup.drop(cgroup)

    def wait_armed(self, timeout: float) -> bool:
        """True once a gate is armed (benchmarks and tests: the next take gets it)."""
        with self._armed:
            self._armed.wait_for(lambda: self._ready is not None or self._failed, timeout)
            return self._ready is not None

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                retired, self._retired = self._retired, []
            for cgroup in retired:
                pidscgroup.drop(cgroup)
            with self._lock:
                if not self._users or self._failed or self._ready is not None:
                    continue
                wait = self._arm_at - time.monotonic()
            if wait > 0:  # a command is being answered: its CPU first
                self._wanted.wait(wait)
                self._wanted.set()
                continue
            gate = arm(self._python)
            with self._lock:
                if gate is None:
                    self._failed = True  # no cgroup here: stop trying until the next enable
                    self._armed.notify_all()
                elif not self._users or self._ready is not None:
                    pass
                else:
                    self._ready, gate = gate, None
                    self._armed.notify_all()
            if gate is not None:
                gate.discard()


POOL = Pool()
enable = POOL.enable
disable = POOL.disable
take = POOL.take
answered = POOL.answered
retire = POOL.retire
wait_armed = POOL.wait_armed
