"""Call telemetry: one row per catalog call in SQLite ``call_monitor.db``.

A telemetry failure never fails the call: it is reported once as a warning on
stderr and the call's result stands.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.state import state_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    function_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    success INTEGER NOT NULL,
    error_code TEXT,
    caller TEXT NOT NULL,
    host TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_function ON calls (function_id, duration_ms);
CREATE VIEW IF NOT EXISTS function_stats AS
WITH ranked AS (
    SELECT function_id, duration_ms, success,
           ROW_NUMBER() OVER (PARTITION BY function_id ORDER BY duration_ms) AS rn,
           COUNT(*) OVER (PARTITION BY function_id) AS n
    FROM calls
)
SELECT function_id,
       MAX(n) AS count,
       ROUND(AVG(success), 4) AS success_rate,
       MIN(CASE WHEN rn >= 0.50 * n THEN duration_ms END) AS p50_ms,
       MIN(CASE WHEN rn >= 0.95 * n THEN duration_ms END) AS p95_ms
FROM ranked GROUP BY function_id;
"""


@dataclass(frozen=True)
class CallRecord:
    function_id: str
    started_at: float
    duration_ms: float
    success: bool
    error_code: str | None
    caller: str
    host: str | None = None


_local = threading.local()
_warned = False


def db_path() -> Path:
    return state_dir() / "call_monitor.db"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # Telemetry can lose the last rows on power loss; it must not slow every call.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def connection() -> sqlite3.Connection:
    """A per-thread, per-process connection to the current state directory's db."""
    path = db_path()
    key = (os.getpid(), str(path))
    cached = getattr(_local, "conn", None)
    if cached is None or cached[0] != key:
        _local.conn = (key, _connect(path))
    conn: sqlite3.Connection = _local.conn[1]
    return conn


def record(rec: CallRecord) -> None:
    global _warned
    try:
        connection().execute(
            "INSERT INTO calls (function_id, started_at, duration_ms, success, error_code, caller, host)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rec.function_id,
                rec.started_at,
                rec.duration_ms,
                int(rec.success),
                rec.error_code,
                rec.caller,
                rec.host,
            ),
        )
    except Exception as exc:  # telemetry must never fail the call
        if not _warned:
            _warned = True
            print(f"fn: warning: telemetry not recorded: {exc}", file=sys.stderr)


def stats() -> list[dict[str, Any]]:
    cur = connection().execute(
        "SELECT function_id, count, success_rate, p50_ms, p95_ms FROM function_stats ORDER BY function_id"
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def recent(function_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    sql = "SELECT function_id, started_at, duration_ms, success, error_code, caller, host FROM calls"
    args: tuple[Any, ...] = ()
    if function_id:
        sql += " WHERE function_id = ?"
        args = (function_id,)
    sql += " ORDER BY id DESC LIMIT ?"
    cur = connection().execute(sql, (*args, limit))
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


class Timed:
    """One call timed with ``perf_counter`` into one row, the only place a row is built::

        with telemetry.Timed("wg_status", caller="cli", host=None) as t:
            ...                       # t.code = "x" records a failure without raising
    An ``FnError`` leaving the block records its code, ``KeyboardInterrupt`` records
    ``interrupted``, any other exception ``internal_error``; the exception goes on.
    """

    def __init__(self, function_id: str, *, caller: str, host: str | None = None) -> None:
        self.function_id, self.caller, self.host = function_id, caller, host
        self.code: str | None = None

    def __enter__(self) -> Timed:
        self.started = time.time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and self.code is None:
            from meshagents.errors import FnError

            if isinstance(exc, FnError):
                self.code = exc.code
            elif isinstance(exc, KeyboardInterrupt):
                self.code = "interrupted"
            elif isinstance(exc, Exception):
                self.code = "internal_error"
        record(
            CallRecord(
                function_id=self.function_id,
                started_at=self.started,
                duration_ms=(time.perf_counter() - self._t0) * 1000.0,
                success=self.code is None,
                error_code=self.code,
                caller=self.caller,
                host=self.host,
            )
        )
