"""What the benchmark scripts share besides their flags (``benchcli``).

    port = free_port()          # a loopback TCP port nothing listens on right now
    pct([3.0, 1.0, 2.0], 50)    # -> 2.0: the nearest-rank percentile of the values
    bulk_peers(interface, netns, ledger, 10_000)   # a hub with that many more peers, fast
    Rig.up(..., bot_settings=scripted_operator())  # the bot's per-sender limit out of the way
    kept_dir("bench-e2e-trace-")  # a new /var/tmp dir the bench leaves behind; old ones pruned
"""

from __future__ import annotations

import base64
import secrets
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

#: How many output directories of one kind a bench leaves in /var/tmp (the newest), and how
#: old another must be before it is removed (a bench running beside this one keeps its own).
KEEP_DIRS = 5
PRUNE_AGE_S = 600.0


def scripted_operator(per_minute: float = 1200.0) -> dict[str, float]:
    """bot.toml numbers for a bench whose sessions are all the one operator user: the bot's
    per-sender limit (120/min, burst 30, by design for a typing operator) would otherwise
    refuse a bench above 2 commands/s. A hub whose operators script commands raises it the same
    way (bot.toml ``commands_per_minute``)."""
    return {"commands_per_minute": per_minute, "command_burst": max(30, int(per_minute // 10))}


def kept_dir(prefix: str, parent: Path = Path("/var/tmp")) -> Path:
    """A new directory ``parent/<prefix>XXXX`` for what a bench keeps for reading after it
    ends (its stage stamps), with earlier ones of that prefix pruned to the newest
    ``KEEP_DIRS``: every run adds one, and nothing else ever removed them (40 after a day)."""
    made = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    now = time.time()
    older: list[tuple[float, Path]] = []
    for path in parent.glob(f"{prefix}*"):
        try:
            if path != made and path.is_dir() and not path.is_symlink():
                older.append((path.stat().st_mtime, path))
        except OSError:  # removed meanwhile
            continue
    older.sort(reverse=True)
    for mtime, path in older[KEEP_DIRS - 1 :]:
        if now - mtime > PRUNE_AGE_S:
            shutil.rmtree(path, ignore_errors=True)
    return made


def free_port() -> int:
    """A loopback TCP port free at the moment of asking (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values`` by nearest rank; ``values`` must not be empty."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def bulk_peers(interface: str, netns: str | None, ledger: Path, count: int) -> None:
    """Give a running userspace hub ``count`` more peers (``bulk-<n>``, 10.200.0.0/16): live on its
    interface over UAPI, in 500s, and as active rows of its ledger, written directly. Far faster than
    ``count`` wg_peer_add calls; for measuring a hub that is large, not for testing adds."""
    from meshagents.wg.model import PeerSpec
    from meshagents.wg.uapi import render_set
    from meshagents.wg.userspace import UserspaceBackend

    be = UserspaceBackend(interface, netns)
    db = sqlite3.connect(ledger)
    now = time.time()
    for base in range(0, count, 500):
        batch = [
            PeerSpec(base64.b64encode(secrets.token_bytes(32)).decode(), (f"10.200.{i // 256}.{i % 256}/32",))
            for i in range(base, min(base + 500, count))
        ]
        be.uapi.set(render_set(peers=batch))
        db.executemany(
            "INSERT INTO peers VALUES (?, ?, ?, ?, 'active', 0, ?, ?)",
            [(p.public_key, f"bulk-{base + j}", f"10.200.{(base + j) // 256}.{(base + j) % 256}",
              200000 + base + j, now, now) for j, p in enumerate(batch)],
        )  # fmt: skip
    db.commit()
    db.close()


def rss_mb(pid: int, *, gone: float | None = None) -> float:
    """The resident set of ``pid`` in MB (VmRSS); ``gone`` when the process has gone, if
    given, else the OSError."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        if gone is None:
            raise
        return gone
    return 0.0


class RssPeak:
    """``with RssPeak(pid) as peak:`` samples ``pid``'s RSS every ``every_s`` in a thread;
    ``peak.peak`` is the highest seen (sampling stops if the process goes)."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(self.every_s)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
