"""One pids cgroup per sandboxed run: made fresh with ``pids.max``, joined by the run's
first process, removed when the run has ended.

    root() -> Path | None          # the writable pids hierarchy (cgroup v1 pids, or v2), or None
    make() -> Path | None          # a fresh cgroup with pids.max = MAX_PIDS, or None
    join(path, pid)                # move pid into it (OSError when it cannot)
    drop(path)                     # remove it once its processes are gone (bounded wait)
    sweep()                        # remove the empty cgroups of agents that died (kill -9)

Joining is the slow part on cgroup v1: a ``cgroup.procs`` write waits for an RCU grace
period (~12 ms here), which is why :mod:`prearm` joins ahead of the request.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

MAX_PIDS = 256
PARENT = "meshagents-sandbox"
SWEEP_AGE_S = 60.0  # a run's cgroup is joined within milliseconds of its making; older and empty is left over


def root() -> Path | None:
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if base == Path("/sys/fs/cgroup") and "pids" not in _read(base / "cgroup.controllers"):
            continue
        if (base / "cgroup.procs").exists() and os.access(base, os.W_OK):
            return base
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return ""


def make() -> Path | None:
    """A fresh cgroup with ``pids.max`` for one run, or None where none can be made."""
    base = root()
    if base is None:
        return None
    path = base / PARENT / f"run-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        path.mkdir(parents=True)
        (path / "pids.max").write_text(str(MAX_PIDS), encoding="ascii")
    except OSError:
        with contextlib.suppress(OSError):
            path.rmdir()
        return None
    return path


def join(path: Path, pid: int) -> None:
    with open(path / "cgroup.procs", "w", encoding="ascii") as fh:
        fh.write(str(pid))


def drop(path: Path | None) -> None:
    if path is None:
        return
    # The sandbox's last processes leave the cgroup a moment after the exit is seen (its PID
    # namespace is torn down): usually within a millisecond, so the first waits are short.
    delay, waited = 0.0005, 0.0
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if waited >= 0.5:
                return
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)


def sweep() -> int:
    """Remove the run cgroups whose agent process is gone (an agent killed with -9 leaves
    its idle pre-armed one behind, empty); a cgroup still in use refuses the rmdir."""
    base = root()
    if base is None:
        return 0
    removed = 0
    with contextlib.suppress(OSError):
        for entry in (base / PARENT).iterdir():
            parts = entry.name.split("-")
            if len(parts) != 3 or parts[0] != "run" or not parts[1].isdigit():
                continue
            if int(parts[1]) == os.getpid() or Path(f"/proc/{parts[1]}").exists():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime > time.time() - SWEEP_AGE_S:
                    continue  # young: maybe made a moment ago by an agent in another PID namespace
            with contextlib.suppress(OSError):
                entry.rmdir()
                removed += 1
    return removed
