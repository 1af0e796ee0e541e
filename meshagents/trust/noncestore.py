"""The persistent set of envelope nonces a device has accepted, pruned past expiry.

Public API::

    NonceStore(path)                 # its own SQLite file, or NonceStore.on(conn) to share one
    .seen(nonce) -> bool
    .consume(nonce, keep_until, *, now=None)   # FnError("rejected_nonce") if already there
    .insert(nonce, keep_until)       # inside a transaction the caller already holds
    .prune(now) -> int               # forget nonces whose keep_until has passed
    .maybe_prune(now=None)           # prune every 256 inserts (consume and AuditLog do this)
    .count() -> int
    .insert_approval(event_id, request_id, seq)   # in the caller's transaction; once ever
    .approval_used(event_id) -> str | None          # the request id it ran, if spent

A nonce is kept until ``keep_until`` = the envelope's ``expires_at`` plus the clock
skew allowance: after that the envelope is refused as ``rejected_expired`` anyway,
so forgetting its nonce cannot let a replay through. Commits are durable on return
(WAL, ``synchronous=FULL``), so a replay after a restart is still refused. The
audit log shares its connection, so the nonce and the intent entry commit together.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from meshagents.errors import FnError
from meshagents.trust.db import connect

SCHEMA = "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, keep_until INTEGER NOT NULL)"
#: Approval events already spent. Never pruned: an approval has no expiry the device can
#: trust more than its own record (a row is ~100 bytes per approved request).
APPROVALS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS approvals_used "
    "(event_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, seq INTEGER NOT NULL)"
)
PRUNE_EVERY = 256


class NonceStore:
    def __init__(self, path: Path | None = None, *, conn: sqlite3.Connection | None = None) -> None:
        if conn is None:
            if path is None:
                raise ValueError("NonceStore needs a path or a connection")
            conn = connect(path)
        self.conn = conn
        self.conn.execute(SCHEMA)
        self.conn.execute(APPROVALS_SCHEMA)
        self._inserts = 0

    @classmethod
    def on(cls, conn: sqlite3.Connection) -> NonceStore:
        return cls(conn=conn)

    def seen(self, nonce: str) -> bool:
        return self.conn.execute("SELECT 1 FROM nonces WHERE nonce=?", (nonce,)).fetchone() is not None

    def insert(self, nonce: str, keep_until: int) -> None:
        """Record ``nonce`` in the caller's open transaction; rejected_nonce if present."""
        try:
            self.conn.execute("INSERT INTO nonces(nonce, keep_until) VALUES(?, ?)", (nonce, keep_until))
        except sqlite3.IntegrityError as exc:
            raise FnError("rejected_nonce", "nonce already used") from exc
        self._inserts += 1

    def insert_approval(self, event_id: str, request_id: str, seq: int) -> None:
        """Spend approval ``event_id`` in the caller's open transaction; rejected_approval if spent."""
        try:
            self.conn.execute(
                "INSERT INTO approvals_used(event_id, request_id, seq) VALUES(?, ?, ?)",
                (event_id, request_id, seq),
            )
        except sqlite3.IntegrityError as exc:
            raise FnError("rejected_approval", "approval_reused: this approval was already used") from exc

    def approval_used(self, event_id: str) -> str | None:
        sql = "SELECT request_id FROM approvals_used WHERE event_id=?"
        row = self.conn.execute(sql, (event_id,)).fetchone()
        return None if row is None else str(row[0])

    def consume(self, nonce: str, keep_until: int, *, now: int | None = None) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.insert(nonce, keep_until)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.maybe_prune(now)

    def maybe_prune(self, now: int | None = None) -> None:
        """Prune once every PRUNE_EVERY inserts, so the table stays the size of the live window."""
        if self._inserts >= PRUNE_EVERY:
            self.prune(int(time.time()) if now is None else now)

    def prune(self, now: int) -> int:
        self._inserts = 0
        cur = self.conn.execute("DELETE FROM nonces WHERE keep_until < ?", (now,))
        return cur.rowcount

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        self.conn.close()
