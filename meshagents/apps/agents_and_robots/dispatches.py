"""The bot's own ``operations.db``: one row per capability request it handled.

    store = DispatchStore.open()                  # state_dir()/agents_and_robots/operations.db
    store.record(request_id=..., room_id=..., sender=..., capability=..., args=..., now=...)
    store.set_status(request_id, "pending_approval", now=..., approval_id="K309X1")
    store.set_status(request_id, "sent", now=..., approval_event_id="$ev")
    store.set_status(request_id, "ok", now=...)   # the device's answer
    store.get(request_id) / store.recent(50) / store.by_status("pending_approval")
    store.expire_orphans(now)                     # at start: pending from a previous run

Arguments are never stored, only ``args_digest``: the trust core's digest (sha256 hex
of the canonical JSON), the same value the device's audit entry keeps, so a row here
and an audit entry there can be matched. An ``fs.write`` content can hold anything.

Timings: ``created_at`` (received), ``decided_at`` (refused, approved, denied, expired,
or sent without approval), ``finished_at`` (a final status). Status vocabulary:

    received -> refused | pending_approval | sent
    pending_approval -> approved -> sent | denied | expired
    sent -> ok | error | rejected_* | peer_revoked | mesh_unreachable | timeout

SQLite in WAL mode; the schema is versioned with ``PRAGMA user_version`` and plain
numbered migrations, applied in one transaction each. A database newer than the code
is refused (``store_too_new``) rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from meshagents.errors import FnError
from meshagents.state import state_dir
from meshagents.trust.approval import args_digest as trust_args_digest

APP = "agents_and_robots"
DB_NAME = "operations.db"

DECISIONS = frozenset({"refused", "approved", "denied", "expired"})
FINAL = frozenset({
    "refused", "denied", "expired", "ok", "error", "timeout", "peer_revoked", "mesh_unreachable",
    "rejected_signature", "rejected_device", "rejected_expired", "rejected_nonce",
    "rejected_capability", "rejected_args", "rejected_approval",
})
STATUSES = frozenset({"received", "pending_approval", "approved", "sent"}) | DECISIONS | FINAL
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"refused", "pending_approval", "sent", "peer_revoked", "error"}),
    "pending_approval": frozenset({"approved", "denied", "expired", "error"}),
    "approved": frozenset({"sent", "peer_revoked", "error"}),
    "sent": FINAL - {"refused", "denied", "expired"},
}

MIGRATIONS: tuple[str, ...] = (
    # 1: the dispatch log and the e2e check runs
    """
    CREATE TABLE matrix_capability_dispatches (
        request_id        TEXT PRIMARY KEY,
        room_id           TEXT NOT NULL,
        device            TEXT,
        sender            TEXT NOT NULL,
        command           TEXT NOT NULL,
        capability        TEXT,
        args_digest       TEXT NOT NULL,
        status            TEXT NOT NULL,
        reason            TEXT,
        approval_id       TEXT,
        approval_event_id TEXT,
        command_event_id  TEXT,
        created_at        REAL NOT NULL,
        decided_at        REAL,
        finished_at       REAL
    );
    CREATE INDEX dispatches_status ON matrix_capability_dispatches(status, created_at);
    CREATE TABLE e2e_runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        check_id    TEXT NOT NULL,
        started_at  REAL NOT NULL,
        finished_at REAL,
        success     INTEGER,
        detail      TEXT
    );
    """,
    # 2: find a device's rows and the row of an approval quickly
    """
    CREATE INDEX dispatches_device ON matrix_capability_dispatches(device, created_at);
    CREATE INDEX dispatches_approval ON matrix_capability_dispatches(approval_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def args_digest(args: Mapping[str, Any]) -> str:
    """The trust core's digest of ``args`` (``meshagents.trust.approval.args_digest``, the
    one definition the device's audit entry and the approval binding use), with a refusal
    in the bot's words (``bad_arguments``)."""
    try:
        return trust_args_digest(dict(args))
    except FnError as exc:
        raise FnError("bad_arguments", f"arguments are not canonical JSON: {exc.message}") from exc


def default_path() -> Path:
    return state_dir() / APP / DB_NAME


@dataclass(frozen=True)
class Dispatch:
    request_id: str
    room_id: str
    device: str | None
    sender: str
    command: str
    capability: str | None
    args_digest: str
    status: str
    reason: str | None
    approval_id: str | None
    approval_event_id: str | None
    command_event_id: str | None
    created_at: float
    decided_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class E2eRun:
    id: int
    check_id: str
    started_at: float
    finished_at: float | None
    success: bool | None
    detail: str | None


_COLUMNS = ", ".join(Dispatch.__dataclass_fields__)


class DispatchStore:
    """A small typed repository over operations.db. One connection per store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise FnError("store_error", f"{path}: {exc}") from exc

    @classmethod
    def open(cls, path: Path | None = None) -> DispatchStore:
        return cls(path or default_path())

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DispatchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._tx() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise FnError("store_too_new",
                              f"{self.path} has schema {current}; this code knows up to {SCHEMA_VERSION}")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    # ---- dispatches ----------------------------------------------------------------------

    def record(
        self,
        *,
        request_id: str,
        room_id: str,
        sender: str,
        command: str,
        capability: str | None,
        args: Mapping[str, Any],
        now: float,
        device: str | None = None,
        command_event_id: str | None = None,
        status: str = "received",
        reason: str | None = None,
    ) -> Dispatch:
        """A new row; ``status`` may start as ``refused`` for an at-once refusal."""
        if status not in ("received", "refused"):
            raise FnError("dispatch_status_invalid",
                          f"a dispatch starts as received or refused, not {status}")
        digest = args_digest(args)
        decided = now if status == "refused" else None
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO matrix_capability_dispatches ({_COLUMNS}) "  # noqa: S608 - fixed column list
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?)",
                    (request_id, room_id, device, sender, command, capability, digest, status, reason,
                     command_event_id, now, decided, decided),
                )
        except sqlite3.IntegrityError as exc:
            raise FnError("dispatch_exists", f"request {request_id} is already recorded") from exc
        return self._must_get(request_id)

    def set_status(
        self,
        request_id: str,
        status: str,
        *,
        now: float,
        reason: str | None = None,
        approval_id: str | None = None,
        approval_event_id: str | None = None,
    ) -> Dispatch:
        """Move a row along the status graph; a move the graph lacks is refused."""
        if status not in STATUSES:
            raise FnError("dispatch_status_invalid", f"unknown status {status!r}")
        with self._tx() as db:
            row = db.execute("SELECT status FROM matrix_capability_dispatches WHERE request_id = ?",
                             (request_id,)).fetchone()
            if row is None:
                raise FnError("dispatch_not_found", f"no dispatch {request_id}")
            if status not in TRANSITIONS.get(row[0], frozenset()):
                raise FnError("dispatch_status_invalid", f"{request_id}: {row[0]} cannot become {status}")
            decided = now if status in DECISIONS or (status == "sent" and row[0] == "received") else None
            finished = now if status in FINAL else None
            db.execute(
                "UPDATE matrix_capability_dispatches SET status = ?, reason = COALESCE(?, reason), "
                "approval_id = COALESCE(?, approval_id), approval_event_id = COALESCE(?, approval_event_id), "
                "decided_at = COALESCE(decided_at, ?), finished_at = COALESCE(finished_at, ?) "
                "WHERE request_id = ?",
                (status, reason, approval_id, approval_event_id, decided, finished, request_id),
            )
        return self._must_get(request_id)

    def _one(self, column: Literal["request_id", "approval_id"], value: str) -> Dispatch | None:
        """The row whose ``column`` (a unique key, never caller text) is ``value``."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM matrix_capability_dispatches WHERE {column} = ?",  # noqa: S608
            (value,),
        ).fetchone()
        return None if row is None else Dispatch(*row)

    def get(self, request_id: str) -> Dispatch | None:
        return self._one("request_id", request_id)

    def _must_get(self, request_id: str) -> Dispatch:
        found = self.get(request_id)
        if found is None:
            raise FnError("dispatch_not_found", f"no dispatch {request_id}")
        return found

    def by_approval(self, approval_id: str) -> Dispatch | None:
        return self._one("approval_id", approval_id)

    def recent(self, limit: int = 50, *, device: str | None = None) -> list[Dispatch]:
        if device is None:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM matrix_capability_dispatches "  # noqa: S608
                "ORDER BY created_at DESC, request_id DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM matrix_capability_dispatches WHERE device = ? "  # noqa: S608
                "ORDER BY created_at DESC, request_id DESC LIMIT ?", (device, limit)).fetchall()
        return [Dispatch(*r) for r in rows]

    def by_status(self, status: str) -> list[Dispatch]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM matrix_capability_dispatches WHERE status = ? "  # noqa: S608
            "ORDER BY created_at, request_id", (status,)).fetchall()
        return [Dispatch(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute(
            "SELECT status, COUNT(*) FROM matrix_capability_dispatches GROUP BY status").fetchall())

    def expire_orphans(self, now: float, reason: str = "bot_restarted") -> list[str]:
        """Expire rows left pending_approval by a previous run (their approvals lived in
        memory); returns their request ids so the shell can post the notices."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute(
                "SELECT request_id FROM matrix_capability_dispatches WHERE status = 'pending_approval' "
                "ORDER BY created_at, request_id").fetchall()]
            db.execute(
                "UPDATE matrix_capability_dispatches SET status = 'expired', reason = ?, "
                "decided_at = COALESCE(decided_at, ?), finished_at = COALESCE(finished_at, ?) "
                "WHERE status = 'pending_approval'", (reason, now, now))
        return ids

    # ---- e2e runs ------------------------------------------------------------------------

    def start_e2e_run(self, check_id: str, *, now: float) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO e2e_runs (check_id, started_at) VALUES (?, ?)", (check_id, now))
            return int(cur.lastrowid or 0)

    def finish_e2e_run(self, run_id: int, *, success: bool, now: float, detail: str | None = None) -> E2eRun:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE e2e_runs SET finished_at = ?, success = ?, detail = ? "
                "WHERE id = ? AND finished_at IS NULL",
                (now, int(success), detail, run_id))
            if cur.rowcount != 1:
                raise FnError("e2e_run_not_found", f"no unfinished e2e run {run_id}")
        return self.e2e_runs(limit=1, run_id=run_id)[0]

    def e2e_runs(self, limit: int = 20, *, run_id: int | None = None) -> list[E2eRun]:
        where, params = ("WHERE id = ?", (run_id, limit)) if run_id is not None else ("", (limit,))
        rows = self._db.execute(
            f"SELECT id, check_id, started_at, finished_at, success, detail FROM e2e_runs {where} "  # noqa: S608
            "ORDER BY id DESC LIMIT ?", params).fetchall()
        return [E2eRun(r[0], r[1], r[2], r[3], None if r[4] is None else bool(r[4]), r[5]) for r in rows]
