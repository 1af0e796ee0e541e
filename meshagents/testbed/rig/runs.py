"""A record of each running rig, so a rig whose process was SIGKILLed can be cleaned up.

    runs = RunRecord(suffix, workdir, own_workdir=True)   # /run/meshagents-rig/<suffix>.json
    runs.child(name, pid, argv)                           # after each process start
    runs.remove()                                         # at the end of a normal teardown
    cleanup_dead(log) -> [suffix, ...]                    # ``./fn demo --cleanup``

Only runs whose own process is gone are touched, and only what carries their suffix:
the process groups recorded for them (checked against the recorded command line, so a
reused pid is left alone), their namespaces (``rh<sfx>``, ``rd<sfx><i>``, ``rk<sfx>``),
WireGuard sockets, the Docker run dir and cgroup, and the work dir if the rig made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshagents.fsutil import write_atomic
from meshagents.procs import pid_alive

RUNS_DIR = Path("/run/meshagents-rig")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""




class RunRecord:
    def __init__(self, suffix: str, workdir: Path, *, own_workdir: bool, runs_dir: Path = RUNS_DIR) -> None:
        self.path = runs_dir / f"{suffix}.json"
        self.data: dict[str, Any] = {
            "suffix": suffix,
            "pid": os.getpid(),
            "workdir": str(workdir),
            "own_workdir": own_workdir,
            "children": [],
        }
        runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._save()

    def _save(self) -> None:
        write_atomic(self.path, json.dumps(self.data), mode=0o666, fsync=False)

    def child(self, name: str, pid: int, argv: list[str]) -> None:
        self.data["children"].append({"name": name, "pid": pid, "cmd": " ".join(argv)})
        self._save()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _cgroup_pids(parent: str) -> set[int]:
    pids: set[int] = set()
    root = Path("/sys/fs/cgroup")
    for hierarchy in [root, *(p for p in root.iterdir() if p.is_dir())]:
        top = hierarchy / parent.lstrip("/")
        if top.is_dir():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(x) for x in procs.read_text().split())
    return pids


def dead_runs(runs_dir: Path = RUNS_DIR) -> list[dict[str, Any]]:
    out = []
    for file in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else []:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and not pid_alive(int(data.get("pid", 0))):
            data["_file"] = str(file)
            out.append(data)
    return out


def namespaces_of(suffix: str, listing: str) -> list[str]:
    """The rig namespaces of run ``suffix`` in ``ip netns list`` output (pure)."""
    pattern = re.compile(rf"^r[hk]{re.escape(suffix)}$|^rd{re.escape(suffix)}\d+$")
    return [w.split()[0] for w in listing.splitlines() if w.split() and pattern.match(w.split()[0])]


def cleanup_dead(log: Callable[[str], None], runs_dir: Path = RUNS_DIR) -> list[str]:
    """Remove what rigs whose process died left behind; returns their suffixes."""
    from meshagents.testbed.rig.docker import cleanup_cgroups, shim_pids, unmount_under

    cleaned = []
    for run in dead_runs(runs_dir):
        sfx = str(run["suffix"])
        log(f"cleanup: run {sfx} (pid {run['pid']} is gone)")
        for child in run.get("children", []):
            pid = int(child["pid"])
            # the recorded command line must still match: never signal a reused pid
            if pid_alive(pid) and child["cmd"].split(" ")[-1] in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        run_dir = Path(f"/tmp/mrk-{sfx}")
        for pid in shim_pids(run_dir) if run_dir.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        for ns in namespaces_of(sfx, listing):
            links = subprocess.run(
                ["ip", "-n", ns, "-o", "link"], capture_output=True, text=True, check=False
            )
            for line in links.stdout.splitlines():
                name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
                if name.startswith(f"rw{sfx}"):
                    subprocess.run(["ip", "-n", ns, "link", "del", name], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for sock in Path("/var/run/wireguard").glob(f"rw{sfx}*.sock"):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        if run_dir.exists():
            unmount_under(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        # the demo container's processes outlive their shim: end whatever is in its cgroup
        for pid in _cgroup_pids(f"/meshagents-rig-{sfx}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        cleanup_cgroups(f"/meshagents-rig-{sfx}")
        if run.get("own_workdir"):
            shutil.rmtree(str(run["workdir"]), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            Path(run["_file"]).unlink()
        cleaned.append(sfx)
    return cleaned
