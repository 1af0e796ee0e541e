"""The crypto store: WAL with full durability for crypto writes, a sync token that costs no
fsync of its own, is written after its events were handled and survives a kill -9, and no
empty transactions per sync."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from nio.crypto import OlmAccount

from meshagents.matrix.client.cryptostore import CryptoStore


def _store(path: Path) -> CryptoStore:
    store = CryptoStore("@a:hub.mesh", "DEV", str(path), pickle_key="k")
    if store.load_account() is None:
        store.save_account(OlmAccount())
    return store


def _pragma(store: CryptoStore, name: str) -> object:
    return store.database.execute_sql(f"PRAGMA {name}").fetchone()[0]


def test_wal_and_full_durability_around_a_token(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert _pragma(store, "journal_mode") == "wal"
    assert _pragma(store, "synchronous") == 2  # FULL
    store.save_sync_token("s1")
    store.flush_sync_token()
    assert _pragma(store, "synchronous") == 2  # back to FULL for the crypto writes after it
    store.save_sync_token("s2")
    store.flush_sync_token()
    store.database.close()
    assert _store(tmp_path).load_sync_token() == "s2"


def test_the_token_is_written_only_once_its_events_were_handled(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save_sync_token("s1")
    store.flush_sync_token()
    store.save_sync_token("s2")  # nio, before it hands the sync's events on
    assert _store(tmp_path).load_sync_token() == "s1"  # a crash now fetches s2's events again
    store.flush_sync_token()  # the client, after handling them
    assert _store(tmp_path).load_sync_token() == "s2"


def test_no_write_for_nothing_new(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save_sync_token("s1")
    store.flush_sync_token()
    changes = store.database.execute_sql("SELECT total_changes()").fetchone()[0]
    store.save_sync_token("s1")  # unchanged
    store.flush_sync_token()
    store.save_encrypted_rooms(set())  # what nio passes on most syncs
    assert store.database.execute_sql("SELECT total_changes()").fetchone()[0] == changes
    store.save_encrypted_rooms({"!r:hub.mesh"})
    assert "!r:hub.mesh" in store.load_encrypted_rooms()


def test_a_token_survives_kill_9(tmp_path: Path) -> None:
    _store(tmp_path).database.close()
    code = (
        "import os, signal, sys\n"
        "from meshagents.matrix.client.cryptostore import CryptoStore\n"
        "s = CryptoStore('@a:hub.mesh', 'DEV', sys.argv[1], pickle_key='k')\n"
        "s.save_sync_token('after-kill')\n"
        "s.flush_sync_token()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=Path(__file__).parents[3])
    assert proc.returncode == -signal.SIGKILL
    assert _store(tmp_path).load_sync_token() == "after-kill"
