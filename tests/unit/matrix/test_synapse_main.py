"""The embedded homeserver's Synapse: each SQLite connection it opens is in WAL mode with
``synchronous=NORMAL`` (Synapse's own hook, wrapped once), and that is what the embedded
server and the rig run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from synapse.storage.engines import sqlite as synapse_sqlite

from meshagents.matrix import synapse_main
from meshagents.matrix.homeserver import synapse_argv


def test_a_connection_synapse_opens_commits_without_its_own_fsync(tmp_path: Path) -> None:
    synapse_main._unsynced_commits()
    synapse_main._unsynced_commits()  # once only: not wrapped twice
    hook = synapse_sqlite.Sqlite3Engine.on_new_connection
    assert getattr(hook, "_unsynced", False)
    db = tmp_path / "homeserver.db"
    engine = synapse_sqlite.Sqlite3Engine({"name": "sqlite3", "args": {"database": str(db)}})
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # SQLite's default: FULL
        engine.on_new_connection(conn)  # type: ignore[arg-type]  # Synapse passes its wrapper
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # Synapse's own
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_the_embedded_server_runs_through_it(tmp_path: Path) -> None:
    argv = synapse_argv(tmp_path / "homeserver.yaml")
    assert argv[1:4] == ["-m", "meshagents.matrix.synapse_main", "-c"]
