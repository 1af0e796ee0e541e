"""What an attacker with write access to a device's files can do to its audit chain.

    edit_and_rehash(chain, seq, detail)   # change one row, recompute every hash after it
    cut_tail(chain, after_seq)            # drop the rows after a seq
    resign_records(chain, key, device_id) # rewrite the checkpoint file over the current chain
    drop_record(chain, index)             # remove one line of the checkpoint file

Used by the unit tests and, on a real agent's files, by the integration tests.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from meshagents.trust.audit import COLUMNS, GENESIS, entry_hash
from meshagents.trust.canonical import canonical_bytes
from meshagents.trust.checkpoints import checkpoints_path, line_hash, make_record


def _db(chain: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(chain), isolation_level=None)


def edit_and_rehash(chain: Path, seq: int, detail: str) -> None:
    db = _db(chain)
    try:
        db.execute("UPDATE entries SET detail=? WHERE seq=?", (detail, seq))
        query = f"SELECT id, {COLUMNS} FROM entries WHERE seq >= ? ORDER BY id"
        rows = db.execute(query, (seq,)).fetchall()
        prev_row = db.execute("SELECT hash FROM entries WHERE seq=?", (seq - 1,)).fetchone()
        prev = prev_row[0] if prev_row else GENESIS
        for r in rows:
            rid, s, kind, ts, req, cap, args, status, appr, det = r[:10]
            digest = entry_hash(s, kind, ts, req, cap, args, status, appr, det, prev)
            db.execute("UPDATE entries SET prev_hash=?, hash=? WHERE id=?", (prev, digest, rid))
            prev = digest
    finally:
        db.close()


def cut_tail(chain: Path, after_seq: int) -> None:
    db = _db(chain)
    try:
        db.execute("DELETE FROM entries WHERE seq > ?", (after_seq,))
    finally:
        db.close()


def hashes(chain: Path) -> dict[int, str]:
    db = _db(chain)
    try:
        return {int(s): str(h) for s, h in db.execute("SELECT seq, hash FROM entries")}
    finally:
        db.close()


def records(chain: Path) -> list[dict[str, Any]]:
    path = checkpoints_path(chain)
    if not path.exists():  # killed before the first checkpoint was written: none yet
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_records(chain: Path, recs: list[dict[str, Any]]) -> None:
    checkpoints_path(chain).write_bytes(b"".join(canonical_bytes(r) + b"\n" for r in recs))


def resign_records(chain: Path, key: SigningKey, device_id: str, *, keep_created: bool = True) -> None:
    """Every record re-made over the chain as it is now, signed by ``key`` (links rebuilt)."""
    now = hashes(chain)
    out: list[dict[str, Any]] = []
    prev = GENESIS
    for rec in records(chain):
        created = rec["created_at"] if keep_created else None
        seq = min(rec["seq"], max(now, default=0))
        new = make_record(device_id, len(out) + 1, prev, seq, now.get(seq, GENESIS), key, created)
        out.append(new)
        prev = line_hash(new)
    write_records(chain, out)


def drop_record(chain: Path, index: int) -> None:
    recs = records(chain)
    write_records(chain, [r for r in recs if r["index"] != index])
