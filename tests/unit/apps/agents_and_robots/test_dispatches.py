"""The bot's operations.db: migrations, WAL, the status graph, no raw arguments."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshagents.apps.agents_and_robots.dispatches import (
    SCHEMA_VERSION,
    DispatchStore,
    args_digest,
    default_path,
)
from meshagents.errors import FnError
from meshagents.trust.envelope import args_digest as trust_args_digest

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
SECRET = "PASSWORD=hunter2-do-not-store"


@pytest.fixture
def store(state_dir: Path) -> Iterator[DispatchStore]:
    s = DispatchStore.open()
    yield s
    s.close()


def record(store: DispatchStore, rid: str = "q1", **kw: object) -> None:
    fields: dict[str, object] = dict(
        request_id=rid,
        room_id="!dev:hub",
        sender="@op:hub",
        command="fs.write",
        capability="fs.write",
        args={"path": "/tmp/x", "content": SECRET},
        now=T0,
        device="home-wsl",
        command_event_id="$cmd",
    )
    fields.update(kw)
    store.record(**fields)  # type: ignore[arg-type]


def test_location_wal_and_schema(state_dir: Path, store: DispatchStore) -> None:
    assert store.path == state_dir / "agents_and_robots" / "operations.db" == default_path()
    assert store.schema_version() == SCHEMA_VERSION == 2
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"matrix_capability_dispatches", "e2e_runs"} <= tables
    db.close()


def test_migrations_are_idempotent_and_stepwise(tmp_path: Path) -> None:
    path = tmp_path / "ops.db"
    db = sqlite3.connect(path)  # a database left at version 1 by older code
    from meshagents.apps.agents_and_robots.dispatches import MIGRATIONS

    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.close()
    with DispatchStore(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
    with DispatchStore(path) as s:  # again: nothing to do
        assert s.schema_version() == SCHEMA_VERSION
    db = sqlite3.connect(path)
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"dispatches_status", "dispatches_device", "dispatches_approval"} <= indexes
    db.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ops.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(FnError) as exc:
        DispatchStore(path)
    assert exc.value.code == "store_too_new"


def test_args_are_stored_only_as_digest(store: DispatchStore) -> None:
    record(store)
    row = store.get("q1")
    assert row is not None
    assert row.args_digest == args_digest({"content": SECRET, "path": "/tmp/x"})
    assert len(row.args_digest) == 64 and int(row.args_digest, 16) >= 0
    assert row.args_digest == trust_args_digest({"path": "/tmp/x", "content": SECRET})
    store.close()
    raw = b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())
    assert b"hunter2" not in raw


def test_digest_is_canonical() -> None:
    assert args_digest({"a": 1, "b": ["x", "é"]}) == args_digest({"b": ["x", "é"], "a": 1})
    assert args_digest({"a": 1}) != args_digest({"a": "1"})
    with pytest.raises(FnError) as exc:
        args_digest({"a": float("nan")})
    assert exc.value.code == "bad_arguments"
    with pytest.raises(FnError):
        args_digest({"a": object()})


def test_approval_path_timings(store: DispatchStore) -> None:
    record(store)
    row = store.set_status("q1", "pending_approval", now=T0 + 1, approval_id="K309X1")
    assert (row.status, row.approval_id, row.decided_at, row.finished_at) == (
        "pending_approval",
        "K309X1",
        None,
        None,
    )
    row = store.set_status("q1", "approved", now=T0 + 20, approval_event_id="$thumb")
    assert (row.decided_at, row.approval_event_id) == (T0 + 20, "$thumb")
    row = store.set_status("q1", "sent", now=T0 + 21)
    assert row.decided_at == T0 + 20 and row.finished_at is None
    row = store.set_status("q1", "ok", now=T0 + 22)
    assert (row.status, row.finished_at, row.approval_id) == ("ok", T0 + 22, "K309X1")
    assert store.by_approval("K309X1") == row


def test_direct_send_and_refusal(store: DispatchStore) -> None:
    record(store, "q1")
    row = store.set_status("q1", "sent", now=T0 + 1)
    assert row.decided_at == T0 + 1
    assert store.set_status("q1", "rejected_args", now=T0 + 2, reason="path outside").reason == "path outside"
    record(store, "q2", status="refused", reason="capability rejected: shell.exec.rm not in manifest")
    row2 = store.get("q2")
    assert row2 is not None and row2.decided_at == row2.finished_at == T0


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (["pending_approval"], "sent"),
        (["sent", "ok"], "error"),
        (["refused"], "sent"),
        ([], "approved"),
        ([], "nonsense"),
    ],
)
def test_status_graph_refuses_bad_moves(store: DispatchStore, path: list[str], bad: str) -> None:
    if path and path[0] == "refused":
        record(store, status="refused")
        path = []
    else:
        record(store)
    for status in path:
        store.set_status("q1", status, now=T0)
    with pytest.raises(FnError) as exc:
        store.set_status("q1", bad, now=T0)
    assert exc.value.code == "dispatch_status_invalid"


def test_errors(store: DispatchStore) -> None:
    record(store)
    with pytest.raises(FnError) as exc:
        record(store)
    assert exc.value.code == "dispatch_exists"
    with pytest.raises(FnError) as exc:
        store.set_status("nope", "sent", now=T0)
    assert exc.value.code == "dispatch_not_found"
    with pytest.raises(FnError) as exc:
        record(store, "q9", status="ok")
    assert exc.value.code == "dispatch_status_invalid"
    assert store.get("nope") is None


def test_queries_and_orphans(store: DispatchStore) -> None:
    for i in range(5):
        record(store, f"q{i}", now=T0 + i, device="pi" if i % 2 else "wsl")
    for i in (1, 3):
        store.set_status(f"q{i}", "pending_approval", now=T0 + 10)
    assert [d.request_id for d in store.recent(3)] == ["q4", "q3", "q2"]
    assert [d.request_id for d in store.recent(device="pi")] == ["q3", "q1"]
    assert [d.request_id for d in store.by_status("pending_approval")] == ["q1", "q3"]
    assert store.counts() == {"received": 3, "pending_approval": 2}
    assert store.expire_orphans(T0 + 100) == ["q1", "q3"]
    row = store.get("q1")
    assert row is not None and (row.status, row.reason, row.finished_at) == (
        "expired",
        "bot_restarted",
        T0 + 100,
    )
    assert store.expire_orphans(T0 + 200) == []


def test_e2e_runs(store: DispatchStore) -> None:
    rid = store.start_e2e_run("golden", now=T0)
    run = store.finish_e2e_run(rid, success=True, now=T0 + 5, detail="ok")
    assert (run.check_id, run.success, run.finished_at, run.detail) == ("golden", True, T0 + 5, "ok")
    with pytest.raises(FnError) as exc:
        store.finish_e2e_run(rid, success=False, now=T0 + 6)
    assert exc.value.code == "e2e_run_not_found"
    store.start_e2e_run("second", now=T0 + 7)
    assert [r.check_id for r in store.e2e_runs()] == ["second", "golden"]
    assert store.e2e_runs()[0].success is None


def test_survives_reopen(state_dir: Path) -> None:
    with DispatchStore.open() as s:
        record(s)
        s.set_status("q1", "sent", now=T0 + 1)
    with DispatchStore.open() as s:
        row = s.get("q1")
        assert row is not None and row.status == "sent"
