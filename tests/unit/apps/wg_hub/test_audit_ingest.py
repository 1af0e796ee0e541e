"""Audit ingest: good batch, idempotent retry, tampered / gapped / forged / rewritten batches refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.apps.wg_hub.audit_ingest import chain_status, ingest
from meshagents.apps.wg_hub.store import HubStore
from meshagents.errors import FnError
from meshagents.trust.audit import AuditLog
from meshagents.trust.signing import public_b64

pytestmark = pytest.mark.unit


@pytest.fixture
def chain(tmp_path: Path) -> tuple[AuditLog, SigningKey, HubStore]:
    log = AuditLog(tmp_path / "dev.sqlite", device_id="dev")
    for i in range(3):
        log.append_intent(f"r{i}", "shell.exec.ls", {"argv": ["ls"]})
        log.append_outcome(f"r{i}", "shell.exec.ls", "ok")
    return log, SigningKey.generate(), HubStore(tmp_path / "operations.db")


def batch(log: AuditLog, key: SigningKey, start: int = 0) -> dict[str, Any]:
    return {
        "entries": [e.model_dump(mode="json") for e in log.entries()[start:]],
        "checkpoint": log.checkpoint(key).model_dump(mode="json"),
    }


def code(store: HubStore, key: SigningKey, body: Any) -> str:
    with pytest.raises(FnError) as exc:
        ingest(store, "dev", public_b64(key), body)
    return exc.value.code


def test_good_batch_then_idempotent_retry(chain: tuple[AuditLog, SigningKey, HubStore]) -> None:
    log, key, store = chain
    body = batch(log, key)
    assert ingest(store, "dev", public_b64(key), body)["head_seq"] == 6
    assert ingest(store, "dev", public_b64(key), body)["head_seq"] == 6
    log.append_event("system.boot", "ok")
    assert ingest(store, "dev", public_b64(key), batch(log, key, 6))["head_seq"] == 7
    status = chain_status(store, "dev", public_b64(key))
    assert status["chain"]["ok"] and len(status["entries"]) == 7


def test_refusals(chain: tuple[AuditLog, SigningKey, HubStore]) -> None:
    log, key, store = chain
    body = batch(log, key)
    tampered = {**body, "entries": [*body["entries"][:-1], {**body["entries"][-1], "detail": "x"}]}
    assert code(store, key, tampered) in ("audit_chain_broken", "audit_invalid")
    gap = {**body, "entries": body["entries"][1:]}
    with pytest.raises(FnError) as err:
        ingest(store, "dev", public_b64(key), gap)
    assert err.value.code == "audit_chain_broken" and err.value.details["expected_seq"] == 1
    assert code(store, SigningKey.generate(), body) == "audit_signature_invalid"
    assert code(store, key, {"entries": "x", "checkpoint": {}}) == "audit_invalid"
    assert code(store, key, {"entries": []}) == "audit_invalid"
    assert store.audit_entries("dev") == []  # a refused batch stores nothing
    ingest(store, "dev", public_b64(key), body)
    rewritten = [dict(e) for e in body["entries"]]
    rewritten[1]["status"] = "edited"
    assert code(store, key, {**body, "entries": rewritten}) in ("audit_chain_broken", "audit_invalid")


def test_checkpoint_for_another_device(chain: tuple[AuditLog, SigningKey, HubStore]) -> None:
    log, key, store = chain
    with pytest.raises(FnError) as exc:
        ingest(store, "other", public_b64(key), batch(log, key))
    assert exc.value.code == "audit_invalid"
