"""An approval event is spent with the nonce and the intent, in one transaction: a second
intent naming it fails as rejected_approval and leaves no trace (no nonce, no entry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.trust.audit import AuditLog

pytestmark = pytest.mark.unit


def test_approval_spent_once(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", device_id="d")
    try:
        log.append_intent("r1", "fs.write", {"p": 1}, approval="$A", nonce="n" * 16, keep_until=2**31)
        assert log.nonces.approval_used("$A") == "r1"
        with pytest.raises(FnError) as err:
            log.append_intent("r2", "fs.write", {"p": 1}, approval="$A", nonce="m" * 16, keep_until=2**31)
        assert err.value.code == "rejected_approval" and "approval_reused" in err.value.message
        assert not log.nonces.seen("m" * 16)  # rolled back with it
        assert [e.request_id for e in log.entries()] == ["r1"]
        # events and outcomes may name the approval again (they spend nothing)
        log.append_outcome("r1", "fs.write", "ok")
        log.append_event("fs.write", "rejected_approval", request_id="r3", detail="approval_reused: x")
        assert log.verify().ok
    finally:
        log.close()
    again = AuditLog(tmp_path / "audit.sqlite", device_id="d")  # durable across a restart
    try:
        assert again.nonces.approval_used("$A") == "r1"
    finally:
        again.close()
