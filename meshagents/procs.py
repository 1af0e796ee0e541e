"""Processes: is one still there (one answer for the hub's pid file, the rig's runs and the
VMs), and running a command whose failure is an FnError of the caller's code."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from meshagents.errors import FnError


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie child of ours has exited;
    it only waits to be reaped). A process of another user counts as alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def run(
    argv: list[str], *, code: str, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), output captured as text; with ``check``, a non-zero exit is
    FnError ``code`` naming the command and its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise FnError(code, f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc
