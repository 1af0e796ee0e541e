"""operations.db: migrations, WAL, the one-use token gate under concurrency."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from meshagents.apps.wg_hub.store import MIGRATIONS, HubStore
from meshagents.errors import FnError

pytestmark = pytest.mark.unit


def test_migrates_to_latest_and_is_wal(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "operations.db")
    assert store.version() == len(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "operations.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"wg_peers", "wg_enrollment_tokens", "device_audit", "e2e_runs", "hub_log"} <= tables
    assert (tmp_path / "operations.db").stat().st_mode & 0o777 == 0o600
    HubStore(tmp_path / "operations.db")  # reopening runs nothing twice
    assert store.version() == len(MIGRATIONS)


def test_partial_upgrade_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "operations.db"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = HubStore(path)
    assert store.version() == len(MIGRATIONS)
    store.log("x", "dev", "detail")
    assert store.logs("x")[0]["device_id"] == "dev"


def test_token_claim_is_one_use(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "operations.db")
    store.claim_token("t" * 16, "dev", "minimal", 1, 2)
    with pytest.raises(FnError) as exc:
        store.claim_token("t" * 16, "dev", "minimal", 1, 2)
    assert exc.value.code == "token_used"
    store.release_token("t" * 16)  # the hub failed: the token comes back
    store.claim_token("t" * 16, "dev", "minimal", 1, 2)
    store.finish_token("t" * 16, "pk")
    store.release_token("t" * 16)  # a used token is never released
    with pytest.raises(FnError):
        store.claim_token("t" * 16, "dev", "minimal", 1, 2)
    assert (store.token("t" * 16) or {})["state"] == "used"


def test_concurrent_claims_exactly_one_wins(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "operations.db")
    store.add_token("c" * 16, "dev", "minimal", 1, 2)
    wins: list[int] = []
    losses: list[str] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        try:
            HubStore(tmp_path / "operations.db").claim_token("c" * 16, "dev", "minimal", 1, 2)
            wins.append(i)
        except FnError as exc:
            losses.append(exc.code)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and losses == ["token_used"] * 7


def test_peer_rows_and_serials(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "operations.db")
    assert store.next_serial("pk") == 1
    store.record_peer(
        public_key="pk", device_id="dev", device_key="dk", address="10.42.0.10", profile="minimal",
        token_id="t" * 16, manifest={"serial": 1},
    )  # fmt: skip
    assert store.next_serial("pk") == 2
    row = store.peer("dev")
    assert row is not None and row.state == "enrolled" and store.peer_by_token("t" * 16) == row
    store.set_peer_state("pk", "revoked")
    assert store.peers()["pk"].state == "revoked"
    store.e2e_run("hub_enroll_golden", True, 12.5)


def test_a_call_closing_its_connection_does_not_checkpoint_while_the_store_is_open(tmp_path: Path) -> None:
    """The keeper connection: a write's own close is not the last close (no checkpoint and
    fsync on every call); the write is in the WAL, visible to any reader, and close() folds it in."""
    path = tmp_path / "operations.db"
    wal = tmp_path / "operations.db-wal"
    store = HubStore(path)
    store.log("peer_revoked", "dev", "operator API")
    assert wal.exists() and wal.stat().st_size > 0  # the commit sits in the WAL, not checkpointed
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT kind FROM hub_log").fetchall() == [("peer_revoked",)]
    reader.close()
    store.close()
    store.close()  # twice is fine
    assert not wal.exists()  # the last close checkpointed it into the main file
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT kind FROM hub_log").fetchall() == [("peer_revoked",)]
    reader.close()
