"""Small durable pieces kept next to a client's crypto store.

- ``HandledEvents``: event ids already handled (SQLite, WAL), so a restart never
  handles an event twice — even when the sync token was not saved in time.
(The 0600 JSON files beside it — session, seeds, pins — are written with
``meshagents.fsutil.write_private``.)
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


class HandledEvents:
    """A set of event ids that survives restarts."""

    #: Ids older than this are forgotten on open. A sync never goes back that far: the
    #: token moves forward, and a brand-new store records its first sync undispatched.
    RETENTION_S = 90 * 86400

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS handled (event_id TEXT PRIMARY KEY, room_id TEXT, at REAL)"
        )
        self._db.execute("DELETE FROM handled WHERE at < ?", (time.time() - self.RETENTION_S,))

    def seen(self, event_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM handled WHERE event_id = ?", (event_id,)).fetchone()
        return row is not None

    def mark(self, event_id: str, room_id: str) -> bool:
        """Record ``event_id``; False when it was already there."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO handled (event_id, room_id, at) VALUES (?, ?, ?)",
            (event_id, room_id, time.time()),
        )
        return cur.rowcount == 1

    def count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM handled").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
