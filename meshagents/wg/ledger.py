"""The peers ledger: SQLite (WAL) next to the hub config, the memory that outlives configs.

Every key and device name ever added stays here with the address it got; addresses
come from a counter that only grows, so neither a removed nor a revoked device's
address is handed out again. ``revoked`` is final: the key and the name are refused.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshagents.errors import FnError
from meshagents.wg.allocation import host_address, next_host, parse_hub_address

Status = Literal["active", "removed", "revoked"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS peers (
    public_key TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL UNIQUE,
    host_index INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'removed', 'revoked')),
    has_psk INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class PeerRecord:
    public_key: str
    name: str
    address: str  # the /32, without prefix
    status: Status
    has_psk: bool
    created_at: float
    updated_at: float


def _record(row: sqlite3.Row | tuple[object, ...]) -> PeerRecord:
    pk, name, address, _idx, status, psk, created, updated = tuple(row)
    return PeerRecord(
        public_key=str(pk),
        name=str(name),
        address=str(address),
        status=status,
        has_psk=bool(psk),
        created_at=float(str(created)),
        updated_at=float(str(updated)),
    )


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # peers -----------------------------------------------------------------------------------
    def by_key(self, public_key: str) -> PeerRecord | None:
        row = self.db.execute("SELECT * FROM peers WHERE public_key = ?", (public_key,)).fetchone()
        return None if row is None else _record(row)

    def by_name(self, name: str) -> PeerRecord | None:
        row = self.db.execute("SELECT * FROM peers WHERE name = ?", (name,)).fetchone()
        return None if row is None else _record(row)

    def all(self) -> list[PeerRecord]:
        return [_record(r) for r in self.db.execute("SELECT * FROM peers ORDER BY host_index")]

    def names(self) -> dict[str, tuple[str, str]]:
        """public key -> (name, address) for every peer ever added (one cheap query)."""
        rows = self.db.execute("SELECT public_key, name, address FROM peers")
        return {k: (n, a) for k, n, a in rows}  # TEXT columns: already str

    def active(self) -> list[PeerRecord]:
        return [r for r in self.all() if r.status == "active"]

    def allocate(self, public_key: str, name: str, hub_cidr: str, has_psk: bool) -> PeerRecord:
        """Insert a new active peer with the next never-used address (one transaction)."""
        hub = parse_hub_address(hub_cidr)
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            last = self.get_meta("last_host")
            index = next_host(hub, None if last is None else int(last))
            address = str(host_address(hub, index))
            self.db.execute(
                "INSERT INTO peers VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
                (public_key, name, address, index, int(has_psk), now, now),
            )
            self.set_meta("last_host", str(index))
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.db.execute("ROLLBACK")
            raise FnError("peer_conflict", f"key or name already in the ledger: {exc}") from exc
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        rec = self.by_key(public_key)
        assert rec is not None
        return rec

    def set_status(self, public_key: str, status: Status, has_psk: bool | None = None) -> None:
        if has_psk is None:
            self.db.execute(
                "UPDATE peers SET status = ?, updated_at = ? WHERE public_key = ?",
                (status, time.time(), public_key),
            )
        else:
            self.db.execute(
                "UPDATE peers SET status = ?, has_psk = ?, updated_at = ? WHERE public_key = ?",
                (status, int(has_psk), time.time(), public_key),
            )


# names() and the meta table for a caller that asks every second (the hub's poller,
# /api/peers): one read connection per ledger kept open, and both re-read only when
# another connection committed since (PRAGMA data_version moves then); at 10,000 peers the
# query and the dict were 16 ms of each wg_status, and opening the ledger for its netns a
# few ms more. A replaced file (other inode or ctime) is opened afresh (a checkpoint into
# the main file changes its ctime too: one more read then).
Names = dict[str, tuple[str, str]]
_CACHE: dict[str, tuple[tuple[int, int, int], sqlite3.Connection, int, Names, dict[str, str]]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 8


def _cached(path: Path) -> tuple[Names, dict[str, str]]:
    st = path.stat()
    ident = (st.st_dev, st.st_ino, st.st_ctime_ns)  # ctime too: a new file may reuse the inode
    key = str(path)
    with _CACHE_LOCK:
        got = _CACHE.pop(key, None)
        if got is not None and got[0] != ident:
            got[1].close()
            got = None
        conn = got[1] if got is not None else sqlite3.connect(
            key, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if got is not None and got[2] == version:
                names, meta = got[3], got[4]
            else:
                names = {k: (n, a) for k, n, a in conn.execute("SELECT public_key, name, address FROM peers")}
                meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        except sqlite3.Error:
            conn.close()
            raise
        _CACHE[key] = (ident, conn, version, names, meta)
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))[1].close()
        return names, meta


def cached_names(path: Path) -> Names:
    """:meth:`Ledger.names` of the ledger at ``path``, shared between calls: do not modify it."""
    return _cached(path)[0]


def cached_meta(path: Path) -> dict[str, str]:
    """The ledger's meta table (``netns``, ``last_host``, ...), shared: do not modify it."""
    return _cached(path)[1]
