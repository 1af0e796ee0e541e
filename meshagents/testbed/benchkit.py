"""What the benchmark scripts share besides their flags (``benchcli``).

    port = free_port()          # a loopback TCP port nothing listens on right now
    pct([3.0, 1.0, 2.0], 50)    # -> 2.0: the nearest-rank percentile of the values
    bulk_peers(interface, netns, ledger, 10_000)   # a hub with that many more peers, fast
"""

from __future__ import annotations

import base64
import secrets
import socket
import sqlite3
import time
from pathlib import Path


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
