"""The embedded homeserver's entry point: Synapse's own ``main``, its SQLite commits unsynced.

    python -m meshagents.matrix.synapse_main -c homeserver.yaml    (what EmbeddedSynapse runs)

Synapse opens its SQLite database in WAL mode with SQLite's default ``synchronous=FULL``:
every write transaction waits for an fsync of the log, and on SQLite Synapse has one
database connection, so every request's reads queue behind those commits (~9 ms of commit
time per command in its database thread, py-spy, docs/BENCHMARKS.md session 7). The
embedded server is the tests' and the local demo's, never a hub's (production runs
Synapse on Postgres, meshagents/hubhost): here each connection also gets
``synchronous=NORMAL``, which in WAL mode is still atomic and consistent and survives a
killed process; only a power cut may lose the last commits. Synapse has no setting for it,
so the engine's connection hook is wrapped before Synapse starts.
"""

from __future__ import annotations

from typing import Any


def _unsynced_commits() -> None:
    from synapse.storage.engines import sqlite

    engine = sqlite.Sqlite3Engine
    own = engine.on_new_connection
    if getattr(own, "_unsynced", False):
        return

    def on_new_connection(self: Any, db_conn: Any) -> None:
        own(self, db_conn)
        db_conn.execute("PRAGMA synchronous = NORMAL;")
        db_conn.commit()

    on_new_connection._unsynced = True  # type: ignore[attr-defined]
    engine.on_new_connection = on_new_connection  # type: ignore[method-assign]


def main() -> None:
    _unsynced_commits()
    from synapse.app.homeserver import main as synapse_main

    synapse_main()


if __name__ == "__main__":
    main()
