"""Where bubblewrap is, and whether it can make an unprivileged user namespace on this machine.

One owner for the two questions both the device agent (its sandbox, ``apps/device_agent/sandbox.py``)
and the enrollment pre-checks (``enroll/probe.py``) ask, so the installer looks for ``bwrap`` exactly
where the agent will, and neither reaches into the other's layer.
"""

from __future__ import annotations

import shutil
import subprocess

#: The only PATH a sandboxed program (and the lookup of bwrap itself) sees.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def which(name: str) -> str | None:
    """``name`` on this process's PATH, else on :data:`SAFE_PATH`."""
    return shutil.which(name) or shutil.which(name, path=SAFE_PATH)


def find_bwrap() -> str | None:
    """The bubblewrap the agent runs: looked up on :data:`SAFE_PATH` only, never the caller's PATH."""
    return shutil.which("bwrap", path=SAFE_PATH)


def userns_problem(as_nobody: bool) -> str | None:
    """None when bubblewrap makes a user namespace here (as the unprivileged agent would); else why not.

    ``as_nobody`` runs it as uid 65534 through ``setpriv`` (when we are root: the agent will not be).
    """
    bwrap = find_bwrap()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    true = which("true") or "/bin/true"
    cmd = [bwrap, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc", true]
    setpriv = which("setpriv")
    if as_nobody and setpriv:
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap did not run: {exc}"
    if res.returncode != 0:
        return f"bubblewrap cannot make an unprivileged user namespace: {res.stderr.strip()[:200]}"
    return None
