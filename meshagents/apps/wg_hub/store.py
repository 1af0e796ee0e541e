"""operations.db of the hub: SQLite in WAL mode, versioned migrations, one connection per use.

    store = HubStore(path)            # migrates to the latest version on open
    store.claim_token(token, now)     # atomic one use: FnError("token_used") for the loser
    store.release_token(token_id)     # a failure on the hub's side gives the token back
    store.finish_token(token_id, public_key) / .refuse_token(token_id)
    store.record_peer(...) / .peer(device_id) / .peer_by_key(pk) / .peers() / .set_peer_state(...)
    store.log(kind, device_id, detail) / .logs(kind=None)
    store.audit_head(device_id) / .audit_hash_at(device_id, seq) / .audit_entries(device_id)
    store.e2e_run(check_id, ok, duration_ms, detail)
    store.close()                     # at the end: the connection that keeps the WAL open

Peers: the WireGuard layer's ledger (next to the wg-quick config) stays the one source
of truth for key, name, address and active/removed/revoked. ``wg_peers`` here holds
only what the hub adds on top, keyed by the same public key: the device id and device
key, the profile and token it enrolled with, the manifest issued and its serial.

Every write is a short ``BEGIN IMMEDIATE`` transaction on a connection opened for
that call: SQLite serialises writers across threads and processes, which is what
makes "two enrollments with one token, exactly one wins" hold without a lock here.

One more connection stays open for the store's life and does nothing (``close()`` ends
it): SQLite checkpoints the WAL into the main file, with an fsync, whenever the *last*
connection to a database closes, so without it every call's close was a checkpoint —
~3 ms per write, twice on the revoke's path (its row, then the event journal; issue 19).
With it, commits stay in the WAL (``synchronous=NORMAL``: durable across a crash of the
hub, as before) and SQLite's own auto-checkpoint folds them in every ~1000 pages.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.trust.audit import ENTRY_FIELDS, entry_columns_sql

MIGRATIONS: tuple[str, ...] = (
    # 1: the tables the issue names; device_audit holds each device's entries as the trust
    #    core defines them (meshagents.trust.audit.ENTRY_COLUMNS, fixed with the chain's version)
    """
    CREATE TABLE wg_peers (
        public_key TEXT PRIMARY KEY,
        device_id TEXT NOT NULL UNIQUE,
        device_key TEXT NOT NULL,
        address TEXT NOT NULL,
        profile TEXT NOT NULL,
        token_id TEXT,
        manifest TEXT NOT NULL,
        manifest_serial INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('enrolled', 'refused', 'removed', 'revoked')),
        enrolled_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE wg_enrollment_tokens (
        token_id TEXT PRIMARY KEY,
        device_name TEXT NOT NULL,
        profile TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('issued', 'claimed', 'used', 'refused')),
        public_key TEXT,
        claimed_at REAL,
        used_at REAL
    );
    CREATE TABLE device_audit (
        device_id TEXT NOT NULL,
{audit_columns}        received_at REAL NOT NULL,
        PRIMARY KEY (device_id, seq)
    );
    CREATE TABLE device_audit_checkpoints (
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (device_id, seq)
    );
    CREATE TABLE e2e_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        check_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        ok INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """.replace("{audit_columns}", entry_columns_sql(" " * 8)),
    # 2: what the hub did and refused, for operators (never secrets)
    """
    CREATE TABLE hub_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        device_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX hub_log_kind ON hub_log(kind);
    """,
    # 3: manifests waiting for the operator's offline signature (manifest_signing = "offline")
    """
    CREATE TABLE pending_manifests (
        device_id TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        token_id TEXT NOT NULL,
        device_key TEXT NOT NULL,
        address TEXT NOT NULL,
        profile TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 4: the event journal (SSE resume with Last-Event-ID across restarts) and the boot count
    #    that keeps event ids growing across restarts
    """
    CREATE TABLE hub_events (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        ts REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE hub_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)

#: Events kept for resuming streams; older ones are dropped (a client that far behind resyncs).
EVENT_JOURNAL_KEEP = 10_000

#: The columns of an audit entry, as the trust core defines them.
AUDIT_COLUMNS = ENTRY_FIELDS


@dataclass(frozen=True)
class PeerRow:
    public_key: str
    device_id: str
    device_key: str
    address: str
    profile: str
    token_id: str | None
    manifest: dict[str, Any]
    manifest_serial: int
    state: str
    enrolled_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {
            "public_key": self.public_key,
            "device_id": self.device_id,
            "device_key": self.device_key,
            "address": self.address,
            "profile": self.profile,
            "manifest_serial": self.manifest_serial,
            "state": self.state,
            "enrolled_at": self.enrolled_at,
        }


def _peer(row: sqlite3.Row) -> PeerRow:
    return PeerRow(
        public_key=row["public_key"],
        device_id=row["device_id"],
        device_key=row["device_key"],
        address=row["address"],
        profile=row["profile"],
        token_id=row["token_id"],
        manifest=json.loads(row["manifest"]),
        manifest_serial=int(row["manifest_serial"]),
        state=row["state"],
        enrolled_at=float(row["enrolled_at"]),
        updated_at=float(row["updated_at"]),
    )


def hold_open(path: Path, table: str) -> sqlite3.Connection:
    """A connection to the WAL database at ``path`` that only keeps it open, so the other
    connections' closes are not checkpoints (see the module docstring); a read of ``table``
    is what attaches it to the WAL. The hub also holds the WireGuard ledger so (HubContext)."""
    keeper = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    keeper.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()  # noqa: S608 - a table name of ours
    return keeper


class HubStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            self._migrate(db)
        path.chmod(0o600)
        self._keeper: sqlite3.Connection | None = hold_open(path, "hub_meta")

    def close(self) -> None:
        """Drop the connection that holds the WAL open (the last close checkpoints it)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def version(self) -> int:
        with self.connect() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    # tokens ----------------------------------------------------------------------------------
    def add_token(
        self, token_id: str, device_name: str, profile: str, issued_at: int, expires_at: int
    ) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO wg_enrollment_tokens (token_id, device_name, profile, issued_at,"
                " expires_at, state) VALUES (?, ?, ?, ?, ?, 'issued')",
                (token_id, device_name, profile, issued_at, expires_at),
            )

    def claim_token(
        self, token_id: str, device_name: str, profile: str, issued_at: int, expires_at: int
    ) -> None:
        """Mark the token claimed; a token made elsewhere (CLI) is recorded on first sight."""
        now = time.time()
        with self.tx() as db:
            row = db.execute(
                "SELECT state FROM wg_enrollment_tokens WHERE token_id = ?", (token_id,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO wg_enrollment_tokens (token_id, device_name, profile, issued_at, expires_at,"
                    " state, claimed_at) VALUES (?, ?, ?, ?, ?, 'claimed', ?)",
                    (token_id, device_name, profile, issued_at, expires_at, now),
                )
            elif row["state"] != "issued":
                raise FnError("token_used", "enrollment token already used")
            else:
                db.execute(
                    "UPDATE wg_enrollment_tokens SET state = 'claimed', claimed_at = ? WHERE token_id = ?",
                    (now, token_id),
                )

    def release_token(self, token_id: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE wg_enrollment_tokens SET state = 'issued', claimed_at = NULL"
                " WHERE token_id = ? AND state = 'claimed'",
                (token_id,),
            )

    def finish_token(self, token_id: str, public_key: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE wg_enrollment_tokens SET state = 'used', used_at = ?, public_key = ?"
                " WHERE token_id = ?",
                (time.time(), public_key, token_id),
            )

    def token(self, token_id: str) -> dict[str, Any] | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM wg_enrollment_tokens WHERE token_id = ?", (token_id,)).fetchone()
        return None if row is None else dict(row)

    def set_token_state(self, token_id: str, state: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE wg_enrollment_tokens SET state = ? WHERE token_id = ?", (state, token_id))

    # peers -----------------------------------------------------------------------------------
    def record_peer(
        self,
        *,
        public_key: str,
        device_id: str,
        device_key: str,
        address: str,
        profile: str,
        token_id: str | None,
        manifest: dict[str, Any],
    ) -> None:
        now = time.time()
        with self.tx() as db:
            db.execute(
                "INSERT INTO wg_peers (public_key, device_id, device_key, address, profile, token_id,"
                " manifest, manifest_serial, state, enrolled_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'enrolled', ?, ?)"
                " ON CONFLICT(public_key) DO UPDATE SET device_key = excluded.device_key,"
                " manifest = excluded.manifest, manifest_serial = excluded.manifest_serial,"
                " profile = excluded.profile, token_id = excluded.token_id, state = 'enrolled',"
                " updated_at = excluded.updated_at",
                (
                    public_key,
                    device_id,
                    device_key,
                    address,
                    profile,
                    token_id,
                    json.dumps(manifest, sort_keys=True),
                    int(manifest["serial"]),
                    now,
                    now,
                ),
            )

    def peer(self, device_id: str) -> PeerRow | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM wg_peers WHERE device_id = ?", (device_id,)).fetchone()
        return None if row is None else _peer(row)

    def peer_by_key(self, public_key: str) -> PeerRow | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM wg_peers WHERE public_key = ?", (public_key,)).fetchone()
        return None if row is None else _peer(row)

    def peer_by_token(self, token_id: str) -> PeerRow | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM wg_peers WHERE token_id = ?", (token_id,)).fetchone()
        return None if row is None else _peer(row)

    def peers(self) -> dict[str, PeerRow]:
        """public key -> row, for joining with the ledger."""
        with self.connect() as db:
            return {r["public_key"]: _peer(r) for r in db.execute("SELECT * FROM wg_peers")}

    def set_peer_state(self, public_key: str, state: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE wg_peers SET state = ?, updated_at = ? WHERE public_key = ?",
                (state, time.time(), public_key),
            )

    def revoke(self, device_id: str, detail: str) -> PeerRow | None:
        """The peer's state ``revoked`` and the ``peer_revoked`` log row in one transaction
        (the revoke API's bookkeeping: one connection and one commit instead of three,
        on the caller's path; issue 19). None when the hub has no row for it."""
        now = time.time()
        with self.tx() as db:
            row = db.execute("SELECT * FROM wg_peers WHERE device_id = ?", (device_id,)).fetchone()
            if row is not None:
                db.execute("UPDATE wg_peers SET state = 'revoked', updated_at = ? WHERE public_key = ?",
                           (now, row["public_key"]))  # fmt: skip
            db.execute("INSERT INTO hub_log (ts, kind, device_id, detail) VALUES (?, 'peer_revoked', ?, ?)",
                       (now, device_id, detail[:2000]))  # fmt: skip
        return None if row is None else _peer(row)

    def next_serial(self, public_key: str) -> int:
        with self.connect() as db:
            row = db.execute(
                "SELECT manifest_serial FROM wg_peers WHERE public_key = ?", (public_key,)
            ).fetchone()
        return 1 if row is None else int(row[0]) + 1

    # pending manifests (offline signing) ---------------------------------------------------------
    def add_pending(
        self, *, device_id: str, public_key: str, token_id: str, device_key: str, address: str, profile: str,
        body: dict[str, Any],
    ) -> None:  # fmt: skip
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO pending_manifests (device_id, public_key, token_id, device_key,"
                " address, profile, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    device_id,
                    public_key,
                    token_id,
                    device_key,
                    address,
                    profile,
                    json.dumps(body),
                    time.time(),
                ),
            )

    def pending(self, device_id: str | None = None) -> list[dict[str, Any]]:
        with self.connect() as db:
            if device_id is None:
                rows = db.execute("SELECT * FROM pending_manifests ORDER BY created_at").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM pending_manifests WHERE device_id = ?", (device_id,)
                ).fetchall()
        return [{**dict(r), "manifest": json.loads(r["body"])} for r in rows]

    def pending_by_token(self, token_id: str) -> dict[str, Any] | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT device_id FROM pending_manifests WHERE token_id = ?", (token_id,)
            ).fetchone()
        return None if row is None else self.pending(str(row[0]))[0]

    def drop_pending(self, device_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM pending_manifests WHERE device_id = ?", (device_id,))

    # log -------------------------------------------------------------------------------------
    def log(self, kind: str, device_id: str = "", detail: str = "") -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO hub_log (ts, kind, device_id, detail) VALUES (?, ?, ?, ?)",
                (time.time(), kind, device_id, detail[:2000]),
            )

    def logs(self, kind: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        with self.connect() as db:
            if kind is None:
                rows = db.execute("SELECT * FROM hub_log ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM hub_log WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind, limit)
                ).fetchall()
        return [dict(r) for r in rows]

    # audit -----------------------------------------------------------------------------------
    def audit_entries(self, device_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        cols = ", ".join(AUDIT_COLUMNS)
        with self.connect() as db:
            rows = db.execute(
                f"SELECT {cols} FROM device_audit WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                (device_id, after, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def audit_checkpoints(self, device_id: str) -> list[dict[str, Any]]:
        with self.connect() as db:
            rows = db.execute(
                "SELECT body FROM device_audit_checkpoints WHERE device_id = ? ORDER BY seq", (device_id,)
            ).fetchall()
        return [json.loads(r["body"]) for r in rows]

    # e2e -------------------------------------------------------------------------------------
    # event journal ---------------------------------------------------------------------------
    def next_boot(self) -> int:
        """Count this start (1, 2, ...): event ids are ``boot * EVENT_ID_SPAN + n``."""
        with self.tx() as db:
            row = db.execute("SELECT value FROM hub_meta WHERE key = 'boot'").fetchone()
            boot = int(row[0]) + 1 if row else 1
            db.execute("INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('boot', ?)", (str(boot),))
        return boot

    def journal_event(self, event: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO hub_events (id, type, ts, data) VALUES (?, ?, ?, ?)",
                (int(event["id"]), str(event["type"]), float(event["ts"]), json.dumps(event["data"])),
            )
            cutoff = db.execute(
                "SELECT id FROM hub_events ORDER BY id DESC LIMIT 1 OFFSET ?", (EVENT_JOURNAL_KEEP,)
            ).fetchone()
            if cutoff is not None:  # keep the newest; remember how far the dropped ones reached
                db.execute("DELETE FROM hub_events WHERE id <= ?", (cutoff[0],))
                db.execute(
                    "INSERT OR REPLACE INTO hub_meta (key, value) VALUES ('journal_dropped_upto', ?)",
                    (str(cutoff[0]),),
                )

    def events_after(self, after: int, limit: int = EVENT_JOURNAL_KEEP) -> tuple[bool, list[dict[str, Any]]]:
        """(complete, journaled events with id > after). ``complete`` is False when some event
        after ``after`` was already dropped from the journal: the reader must re-read the state."""
        with self.connect() as db:
            row = db.execute("SELECT value FROM hub_meta WHERE key = 'journal_dropped_upto'").fetchone()
            rows = db.execute(
                "SELECT id, type, ts, data FROM hub_events WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            ).fetchall()
        dropped_upto = int(row[0]) if row else 0
        events = [{"id": r[0], "type": r[1], "ts": r[2], "data": json.loads(r[3])} for r in rows]
        return after >= dropped_upto, events

    def e2e_run(self, check_id: str, ok: bool, duration_ms: float, detail: str = "") -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO e2e_runs (check_id, started_at, duration_ms, ok, detail) VALUES (?, ?, ?, ?, ?)",
                (check_id, time.time(), duration_ms, int(ok), detail),
            )
