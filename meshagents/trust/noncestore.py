"""The persistent set of envelope nonces a device has accepted, pruned past expiry.

Public API::

    NonceStore(path)                 # its own SQLite file, or NonceStore.on(conn) to share one
    .seen(nonce) -> bool             # read from SQLite (the durable record)
    .known(nonce) -> bool            # True only for a nonce certainly used (in memory, no SQL)
    .remember(nonce, keep_until)     # after the caller's commit that recorded it
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

``known`` is what ``envelope.verify`` asks (issue 19: the SQLite read was ~20 us of a
~135 us check): the nonces of the store when this process first asked, plus those it
committed since (``consume``, ``remember``) or found already there (a refused insert).
So every hit is a nonce that was really used, and refusing it early is right; a miss
is not proof of freshness (another connection may have committed it since), which is
why the durable insert, under the table's primary key, stays the authority: a replay
that gets past ``known`` is refused there with ``rejected_nonce``, before anything runs.
The memory is pruned with the table and holds the live window only.
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
        #: nonce -> keep_until: a subset of the nonces used (loaded on the first ``known``)
        self._known: dict[str, int] | None = None

    @classmethod
    def on(cls, conn: sqlite3.Connection) -> NonceStore:
        return cls(conn=conn)

    def seen(self, nonce: str) -> bool:
        return self.conn.execute("SELECT 1 FROM nonces WHERE nonce=?", (nonce,)).fetchone() is not None

    def known(self, nonce: str) -> bool:
        """True when ``nonce`` was certainly used before; False: ask the durable insert.

        No SQL after the first call (which loads the table's live nonces): a hit is a
        nonce this store read from the table or committed itself, never a guess.
        """
        known = self._known
        if known is None:
            rows = self.conn.execute("SELECT nonce, keep_until FROM nonces").fetchall()
            known = self._known = {str(n): int(k) for n, k in rows}
        return nonce in known

    def remember(self, nonce: str, keep_until: int) -> None:
        """Note ``nonce`` as used, once the transaction that inserted it has committed
        (a rolled-back insert must not be remembered: the nonce is then still unused)."""
        if self._known is not None:
            self._known[nonce] = keep_until

    def insert(self, nonce: str, keep_until: int) -> None:
        """Record ``nonce`` in the caller's open transaction; rejected_nonce if present.

        The caller calls :meth:`remember` after its commit."""
        try:
            self.conn.execute("INSERT INTO nonces(nonce, keep_until) VALUES(?, ?)", (nonce, keep_until))
        except sqlite3.IntegrityError as exc:
            if self.seen(nonce):  # committed before (another connection, an earlier run): used
                self.remember(nonce, keep_until)
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
        self.remember(nonce, keep_until)
        self.maybe_prune(now)

    def maybe_prune(self, now: int | None = None) -> None:
        """Prune once every PRUNE_EVERY inserts, so the table stays the size of the live window."""
        if self._inserts >= PRUNE_EVERY:
            self.prune(int(time.time()) if now is None else now)

    def prune(self, now: int) -> int:
        self._inserts = 0
        cur = self.conn.execute("DELETE FROM nonces WHERE keep_until < ?", (now,))
        if self._known is not None:
            self._known = {n: k for n, k in self._known.items() if k >= now}
        return cur.rowcount

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        self.conn.close()
