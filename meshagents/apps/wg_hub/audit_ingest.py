"""Audit shipping, hub side: check a device's batch against what the hub holds, then store it.

    ingest(store, device_id, device_key, body) -> {"head_seq": N}
        # FnError: audit_invalid (422) | audit_signature_invalid (401) | audit_chain_broken (409)

The contract (shared with the device agent): ``body = {"entries": [AuditEntry, ...],
"checkpoint": Checkpoint}``, entries contiguous and in seq order, the checkpoint signed
by the device key of the device's manifest, its ``seq``/``head_hash`` the last entry's.
Entries the hub already has must carry the same hashes (a retry is idempotent, a
rewritten history is refused); new entries must continue the stored head: next seq,
``prev_hash`` = stored head hash, and their own hash recomputed here. The whole batch
is one transaction: a refused batch stores nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from meshagents.apps.wg_hub.store import HubStore
from meshagents.errors import FnError
from meshagents.trust.audit import ENTRY_FIELDS, GENESIS, entry_hash
from meshagents.trust.canonical import canonical_bytes
from meshagents.trust.models import AuditEntry, Checkpoint, parse
from meshagents.trust.signing import TYPE_CHECKPOINT, verify_payload

MAX_BATCH = 5000
INSERT_AUDIT = (
    f"INSERT INTO device_audit (device_id, {', '.join(ENTRY_FIELDS)}, received_at)"  # noqa: S608
    f" VALUES ({', '.join('?' * (len(ENTRY_FIELDS) + 2))})"
)
INSERT_CHECKPOINT = (
    "INSERT OR REPLACE INTO device_audit_checkpoints (device_id, seq, body, received_at) VALUES (?, ?, ?, ?)"
)


def broken(message: str, expected_seq: int) -> FnError:
    return FnError("audit_chain_broken", message, expected_seq=expected_seq)


def parse_batch(device_id: str, device_key: str, body: Any) -> tuple[list[AuditEntry], Checkpoint]:
    """Shape and signature checks that need no stored state."""
    if not isinstance(body, dict) or set(body) != {"entries", "checkpoint"}:
        raise FnError("audit_invalid", "body must be {entries: [...], checkpoint: {...}}")
    raw_entries, raw_cp = body["entries"], body["checkpoint"]
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_BATCH:
        raise FnError("audit_invalid", f"entries must be a list of at most {MAX_BATCH}")
    entries = [parse(AuditEntry, e, code="audit_invalid") for e in raw_entries]
    if not isinstance(raw_cp, dict):
        raise FnError("audit_invalid", "checkpoint must be an object")
    cp = parse(Checkpoint, raw_cp, code="audit_invalid")
    if cp.device_id != device_id:
        raise FnError("audit_invalid", f"checkpoint is for device {cp.device_id!r}, not {device_id!r}")
    if cp.device_key != device_key or not verify_payload(
        raw_cp, cp.signature or "", device_key, TYPE_CHECKPOINT
    ):
        raise FnError("audit_signature_invalid", "checkpoint is not signed by the device key of its manifest")
    for a, b in itertools.pairwise(entries):
        if b.seq != a.seq + 1:
            raise FnError("audit_invalid", f"entries not contiguous at seq {a.seq} -> {b.seq}")
    if entries and (cp.seq != entries[-1].seq or cp.head_hash != entries[-1].hash):
        raise FnError("audit_invalid", "checkpoint seq/head_hash must be the last entry's")
    return entries, cp


def _recomputed(e: AuditEntry) -> str:
    return entry_hash(
        e.seq,
        e.kind,
        e.ts_ms,
        e.request_id,
        e.capability,
        e.args_digest,
        e.status,
        e.approval,
        e.detail,
        e.prev_hash,
    )


def ingest(store: HubStore, device_id: str, device_key: str, body: Any) -> dict[str, Any]:
    entries, cp = parse_batch(device_id, device_key, body)
    now = time.time()
    with store.tx() as db:
        row = db.execute(
            "SELECT seq, hash FROM device_audit WHERE device_id = ? ORDER BY seq DESC LIMIT 1", (device_id,)
        ).fetchone()
        head_seq, head_hash = (0, GENESIS) if row is None else (int(row[0]), str(row[1]))
        stored_head = head_seq
        for e in entries:  # every entry, also those the hub has: a rewrite keeping the old hash is refused
            if _recomputed(e) != e.hash:
                raise broken(f"entry {e.seq} content does not match its hash", head_seq + 1)
        for e in entries:
            if e.seq <= stored_head:
                have = db.execute(
                    "SELECT hash FROM device_audit WHERE device_id = ? AND seq = ?", (device_id, e.seq)
                ).fetchone()
                if have is None or have[0] != e.hash:
                    raise broken(f"entry {e.seq} differs from the one the hub holds", stored_head + 1)
                continue
            if e.seq != head_seq + 1:
                raise broken(f"entry {e.seq} does not follow the hub's head {head_seq}", head_seq + 1)
            if e.prev_hash != head_hash:
                raise broken(f"entry {e.seq} does not link to the hub's head", head_seq + 1)
            values = [getattr(e, c) for c in ENTRY_FIELDS]
            db.execute(
                INSERT_AUDIT,
                (device_id, *values, now),
            )
            head_seq, head_hash = e.seq, e.hash
        # a checkpoint must name a head the hub holds (with no entries: an earlier one)
        at = GENESIS if cp.seq == 0 else None
        if cp.seq > 0:
            have = db.execute(
                "SELECT hash FROM device_audit WHERE device_id = ? AND seq = ?", (device_id, cp.seq)
            ).fetchone()
            at = None if have is None else str(have[0])
        if at != cp.head_hash:
            raise broken("checkpoint names a head the hub does not hold", head_seq + 1)
        db.execute(
            INSERT_CHECKPOINT,
            (device_id, cp.seq, canonical_bytes(body["checkpoint"]).decode("utf-8"), now),
        )
    return {"head_seq": head_seq, "head_hash": head_hash}


def chain_status(store: HubStore, device_id: str, device_key: str | None) -> dict[str, Any]:
    """Re-verify what the hub holds for a device (the operator's view):
    ``{"entries": [...], "chain": ChainReport, "checkpoints": [shipped checkpoints]}``."""
    from meshagents.trust.audit import verify_chain

    entries = store.audit_entries(device_id, limit=1_000_000)
    rows = [tuple(e[c] for c in ENTRY_FIELDS) for e in entries]
    checkpoints = store.audit_checkpoints(device_id)
    report = verify_chain(rows, checkpoints, device_key)
    data = json.loads(json.dumps(report.__dict__, default=str))
    # the checkpoints too: a device's verifier (--against-hub) checks its chain against them
    return {"entries": entries, "chain": data, "checkpoints": checkpoints}
