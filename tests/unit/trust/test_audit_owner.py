"""AuditLog owns the entry's row: the columns a hub stores, the batches an agent ships,
the request ids a restart looks up (no caller runs SQL on its connection)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshagents.apps.wg_hub.store import HubStore
from meshagents.trust.audit import ENTRY_FIELDS, AuditLog
from meshagents.trust.models import AuditEntry

pytestmark = pytest.mark.unit


def test_entries_after_pages_through_the_chain(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.sqlite", device_id="d") as log:
        for i in range(5):
            log.append_intent(f"r{i}", "fs.read", {"path": f"/tmp/{i}"})
        assert log.entries_after(0, 2) == [e.model_dump(mode="json") for e in log.entries()[:2]]
        assert [e["seq"] for e in log.entries_after(2, 10)] == [3, 4, 5]
        assert log.entries_after(5, 10) == []
        assert list(log.entries_after(0, 1)[0]) == list(ENTRY_FIELDS)


def test_request_ids_by_kind_and_status(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.sqlite", device_id="d") as log:
        log.append_intent("r1", "fs.read", {})
        log.append_outcome("r1", "fs.read", "ok")
        log.append_intent("r2", "fs.read", {})
        log.append_event("fs.read", "interrupted", request_id="r2")
        assert log.request_ids("outcome") == {"r1"}
        assert log.request_ids("event", "interrupted") == {"r2"}
        assert log.request_ids("event", "ok") == set()
        assert [e.request_id for e in log.pending()] == ["r2"]


def test_the_hub_stores_the_entry_as_the_trust_core_defines_it(tmp_path: Path) -> None:
    HubStore(tmp_path / "ops.db")
    db = sqlite3.connect(tmp_path / "ops.db")
    columns = [row[1] for row in db.execute("PRAGMA table_info(device_audit)")]
    db.close()
    assert columns == ["device_id", *ENTRY_FIELDS, "received_at"]
    assert tuple(AuditEntry.model_fields) == ENTRY_FIELDS
