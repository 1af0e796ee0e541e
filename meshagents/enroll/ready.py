"""Enrollment's last step: the agent's service started AND the agent stays up and is ready.

    wait_ready(kind, marker, timeout_s=..., stable_s=...) -> dict   # raises FnError
    assess(history, timeout_s=..., stable_s=...) -> Assessment     # the pure rule, unit tested

``systemctl restart`` returning 0 says only that the unit was started: an agent that
exits at once (no sandbox, a config it refuses, a homeserver it cannot log in to) is
restarted by systemd every two seconds forever and ``enroll`` would still have said
"done". So enrollment watches it: the agent's ready marker
(:mod:`meshagents.readymark`, written once it is logged in and in its
rooms) must name the process the service manager runs now, and that process must still be
the unit's main process, with no restart in between, ``stable_s`` later.

Failures (the step is recorded as failed in the journal; ``meshagents enroll --resume``
restarts the service and waits again): ``agent_crashed`` — the unit failed or restarted
(the agent exits; its last log lines are in the error's details); ``agent_not_ready`` —
no marker within ``timeout_s`` while it runs (e.g. the homeserver is unreachable).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents import readymark as marker_mod
from meshagents.enroll.precheck import ServiceKind
from meshagents.enroll.service import UNIT
from meshagents.errors import FnError
from meshagents.procs import pid_alive

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_STABLE_S = 5.0


@dataclass(frozen=True)
class Observation:
    """One look at the agent: ``t`` seconds into the wait."""

    t: float
    #: systemd's ActiveState ("active", "activating", "failed", ...), "" when no unit watches it
    active: str
    #: the unit's MainPID (0: none), or the pid the marker names when no unit watches it
    main_pid: int
    #: systemd's NRestarts (0 when no unit)
    restarts: int
    #: the pid in the ready marker (0: no marker)
    marker_pid: int
    #: for a process with no unit: whether ``main_pid`` is alive
    alive: bool = True


@dataclass(frozen=True)
class Assessment:
    done: bool
    ok: bool
    code: str = ""
    message: str = ""
    ready_after_s: float | None = None


def assess(history: Sequence[Observation], *, timeout_s: float, stable_s: float) -> Assessment:
    """Decide from the observations so far (oldest first) whether the agent is up to stay.

    Ready: the marker names the unit's main process, and a later look, at least ``stable_s``
    after the first such one, still sees that process as the active main one with no restart
    in between. Crashed: the unit failed, restarted, or (no unit) the process is gone.
    Not ready: ``timeout_s`` passed without that."""
    if not history:
        return Assessment(False, False)
    first = history[0]
    now = history[-1]
    for ob in history:
        if ob.active == "failed":
            return Assessment(True, False, "agent_crashed", f"the agent's unit failed {ob.t:.1f}s in")
        if ob.restarts > first.restarts:
            return Assessment(
                True, False, "agent_crashed",
                f"the agent exited and was restarted {ob.restarts - first.restarts} time(s) in {ob.t:.1f}s",
            )  # fmt: skip
        if not ob.active and ob.marker_pid and not ob.alive:
            return Assessment(True, False, "agent_crashed", f"the agent (pid {ob.marker_pid}) exited")
    ready_since: Observation | None = None
    for ob in history:
        mine = ob.marker_pid > 0 and ob.marker_pid == ob.main_pid
        good = mine and ob.alive and ob.active in ("active", "")
        if not good:
            if ready_since is not None:  # it was ready and is not any more: it went away
                return Assessment(
                    True, False, "agent_crashed",
                    f"the agent (pid {ready_since.main_pid}) was ready at {ready_since.t:.1f}s"
                    f" and gone at {ob.t:.1f}s",
                )  # fmt: skip
            continue
        if ready_since is None:
            ready_since = ob
        elif ob.t - ready_since.t >= stable_s:
            return Assessment(True, True, ready_after_s=ready_since.t)
    if ready_since is not None:  # ready, not yet watched for stable_s: it gets that long past the timeout
        if now.t < timeout_s + stable_s:
            return Assessment(False, False)
        return Assessment(True, False, "agent_not_ready", f"the agent was ready at {ready_since.t:.1f}s,"
                          " but no later look confirmed it")  # fmt: skip
    if now.t >= timeout_s:
        why = f"its unit is {now.active}" if now.active not in ("active", "") else "it runs"
        return Assessment(
            True, False, "agent_not_ready",
            f"no ready marker within {timeout_s:.0f}s ({why}; the agent writes it once it is logged in"
            " to the homeserver and has joined its rooms)",
        )  # fmt: skip
    return Assessment(False, False)


# I/O ---------------------------------------------------------------------------------------


def _systemd(kind: ServiceKind) -> tuple[str, int, int]:
    argv = ["systemctl", *(["--user"] if kind == "user" else []), "show", UNIT,
            "-p", "ActiveState", "-p", "MainPID", "-p", "NRestarts"]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    props = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    active = props.get("ActiveState", "unknown")
    return active, int(props.get("MainPID") or 0), int(props.get("NRestarts") or 0)


def observe(kind: ServiceKind, marker: Path, t: float) -> Observation:
    data = marker_mod.read(marker) or {}
    pid = data.get("pid")
    marker_pid = pid if isinstance(pid, int) and pid > 0 else 0
    if kind in ("system", "user"):
        active, main_pid, restarts = _systemd(kind)
        return Observation(t, active, main_pid, restarts, marker_pid)
    # termux / login: no service manager to ask; the marker's process must live
    return Observation(t, "", marker_pid, 0, marker_pid, alive=bool(marker_pid) and pid_alive(marker_pid))


def last_log(kind: ServiceKind, lines: int = 15) -> str:
    if kind not in ("system", "user"):
        return ""
    argv = ["journalctl", *(["--user"] if kind == "user" else []), "-u", UNIT, "-n", str(lines),
            "--no-pager", "-o", "cat"]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    return res.stdout[-3000:]


def wait_ready(
    kind: ServiceKind,
    marker: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    stable_s: float = DEFAULT_STABLE_S,
    poll_s: float = 0.5,
    look: Callable[[ServiceKind, Path, float], Observation] = observe,
) -> dict[str, Any]:
    """Watch the agent until :func:`assess` decides; what it saw, or FnError."""
    t0 = time.monotonic()
    history: list[Observation] = []
    while True:
        history.append(look(kind, marker, time.monotonic() - t0))
        verdict = assess(history, timeout_s=timeout_s, stable_s=stable_s)
        if verdict.done:
            break
        time.sleep(poll_s)
    if not verdict.ok:
        message = verdict.message + "; fix it, then `meshagents enroll --resume`"
        details = {"log": last_log(kind), "marker": str(marker), "uid": os.geteuid()}
        if verdict.code == "agent_crashed":
            raise FnError("agent_crashed", message, **details)
        raise FnError("agent_not_ready", message, **details)
    info = marker_mod.read(marker) or {}
    return {
        "ready_after_s": round(verdict.ready_after_s or 0.0, 1),
        "stable_s": stable_s,
        "pid": info.get("pid"),
        "matrix_device": info.get("matrix_device"),
        "device_room": info.get("device_room"),
    }
