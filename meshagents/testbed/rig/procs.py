"""Child processes of the rig, each in its own process group, stopped group by group.

    procs = Processes(log_dir)
    p = procs.start("hub", [...argv], env=env, netns="rh1a2b3c")   # log: log_dir/hub.log
    procs.stop("hub")                 # SIGTERM to the group, wait, SIGKILL; always reaped
    procs.close()                     # every process, newest first

A process group per child (``start_new_session``) so a stop also ends what the child
started (a sandboxed command, Synapse's workers), and a Ctrl-C on the terminal reaches
only the rig, which then stops the children in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meshagents.testbed.rig.netns import nsenter


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Processes:
    def __init__(self, log_dir: Path, on_start: Callable[[str, int, list[str]], None] | None = None) -> None:
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}
        self.on_start = on_start  # the rig records each child (runs.py: cleanup after a SIGKILL)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        netns: str | None = None,
        cwd: Path | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Child:
        if name in self.children and self.children[name].alive():
            raise RuntimeError(f"process {name} is already running")
        log = self.log_dir / f"{name}.log"
        full = [*nsenter(netns), *argv] if netns else argv
        with log.open("ab") as out:
            proc = subprocess.Popen(
                full,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        child = Child(name, proc, log)
        self.children[name] = child
        if self.on_start is not None:
            self.on_start(name, proc.pid, argv)
        return child

    def signal(self, name: str, sig: int) -> None:
        child = self.children[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        child = self.children.pop(name, None)
        if child is None:
            return
        _stop(child, timeout)

    def close(self) -> None:
        for name in reversed(list(self.children)):
            self.stop(name)


def _stop(child: Child, timeout: float) -> None:
    if child.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout)
    # whatever is left of the group (a grandchild that ignored SIGTERM) goes too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.proc.wait(5)
