"""The per-device audit hash chain: durable intents and outcomes, signed checkpoints.

Public API::

    AuditLog(path, *, device_id="")
    .append_intent(request_id, capability, args, *, approval=None, nonce=None,
                   keep_until=None, detail="", ts_ms=None) -> AuditEntry
        # nonce given: nonce and intent commit in ONE transaction; FnError("rejected_nonce");
        # with an approval too, its event id is spent there: FnError("rejected_approval")
    .append_outcome(request_id, capability, status, *, detail="", ts_ms=None) -> AuditEntry
    .append_event(capability, status, *, request_id="", detail="", args=None) -> AuditEntry
    .append(kind, request_id, capability, args_digest, status, ...) -> AuditEntry
    .nonces -> NonceStore        # the same database and connection
    .entries() -> list[AuditEntry]; .head() -> (seq, hash); .pending() -> list[AuditEntry]
    .checkpoint(key: SigningKey) -> Checkpoint; .checkpoints() -> list[dict]
    .verify(device_key: str | None = None) -> ChainReport
    verify_chain(rows, checkpoints, device_key=None, *, after=(0, GENESIS)) -> ChainReport  # pure
    entry_hash(seq, kind, ts_ms, request_id, capability, args_digest, status, approval,
               detail, prev_hash) -> str
    ChainReport(ok, entries, head_seq, head_hash, first_bad_seq, problem, reason, checkpoints)
        # problem: hash_mismatch | gap | reorder | bad_checkpoint_signature | truncated

Each entry's ``hash`` is sha256 over ``b"meshagents-audit-v1\\x00"`` plus its fields
in a fixed order, UTF-8: ``seq;ts_ms;`` then each string as ``<length>:<text>``
(``~`` for a null approval), then ``prev_hash``. Length prefixes make the form
injective without JSON encoding, which is what keeps verification fast.
The first entry's ``prev_hash`` is 64 zeros. SQLite in WAL mode with
``synchronous=FULL``: a commit is on disk when ``append_*`` returns, and a
``kill -9`` at any moment leaves either the whole entry or none of it. An intent
without an outcome is a request that was interrupted; ``pending()`` lists them.

What is caught where: an edited, deleted or reordered row breaks the chain at its
sequence number; a tail dropped after a signed checkpoint shows as ``truncated``;
a rewrite of the whole chain with fresh hashes is caught by the device-signed
checkpoints (and by the hub, which keeps what was shipped).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.canonical import canonical_bytes, sha256_hex
from meshagents.trust.db import connect
from meshagents.trust.models import AuditEntry, Checkpoint, parse
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import TYPE_CHECKPOINT, public_b64, sign_payload, verify_payload

GENESIS = "0" * 64
_TAG = b"meshagents-audit-v1\x00"
COLUMNS = "seq, kind, ts_ms, request_id, capability, args_digest, status, approval, detail, prev_hash, hash"

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    capability TEXT NOT NULL,
    args_digest TEXT NOT NULL,
    status TEXT NOT NULL,
    approval TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_request ON entries(request_id);
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def entry_text(
    seq: int,
    kind: str,
    ts_ms: int,
    request_id: str,
    capability: str,
    args_digest: str,
    status: str,
    approval: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """The injective text an entry's hash covers (``SQL_TEXT`` builds the same in SQLite)."""
    if type(seq) is not int or type(ts_ms) is not int:
        raise TypeError("seq and ts_ms must be integers")
    ap = "~" if approval is None else f"{len(approval)}:{approval}"
    return (
        f"{seq};{ts_ms};{len(kind)}:{kind}{len(request_id)}:{request_id}{len(capability)}:{capability}"
        f"{len(args_digest)}:{args_digest}{len(status)}:{status}{ap}{len(detail)}:{detail}{prev_hash}"
    )


def entry_hash(
    seq: int,
    kind: str,
    ts_ms: int,
    request_id: str,
    capability: str,
    args_digest: str,
    status: str,
    approval: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    text = entry_text(
        seq, kind, ts_ms, request_id, capability, args_digest, status, approval, detail, prev_hash
    )
    return sha256(_TAG + text.encode("utf-8")).hexdigest()


# The same text as entry_text, built by SQLite in C: reading four columns instead of
# eleven is what lets a 200k-entry chain verify in about a second on a slow machine.
# length() of TEXT counts characters, as Python's len() counts code points.
SQL_TEXT = (
    "SELECT seq, prev_hash, hash, CASE WHEN typeof(seq)='integer' AND typeof(ts_ms)='integer' THEN "
    "seq || ';' || ts_ms || ';' || length(kind) || ':' || kind || length(request_id) || ':' || request_id"
    " || length(capability) || ':' || capability || length(args_digest) || ':' || args_digest"
    " || length(status) || ':' || status"
    " || CASE WHEN approval IS NULL THEN '~' ELSE length(approval) || ':' || approval END"
    " || length(detail) || ':' || detail || prev_hash END FROM entries ORDER BY id"
)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    reason: str = ""
    checkpoints: int = 0


Row = Sequence[Any]


def _row_text(row: Row) -> str | None:
    try:
        return entry_text(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])
    except (TypeError, ValueError, IndexError):
        return None


def verify_chain(
    rows: Iterable[Row],
    checkpoints: Sequence[dict[str, Any]],
    device_key: str | None = None,
    *,
    after: tuple[int, str] = (0, GENESIS),
) -> ChainReport:
    """Check rows (``COLUMNS`` order, storage order) and checkpoints; the first bad seq wins.

    ``after=(seq, hash)`` continues from a head already verified: the hub checks each
    shipped batch against the last entry it holds for that device.
    """
    links = [(r[0], r[9], r[10], _row_text(r)) for r in rows]
    return verify_links(links, checkpoints, device_key, after=after)


Link = tuple[Any, Any, Any, Any]  # (seq, prev_hash, stored hash, hashed text or None)


def verify_links(
    links: Sequence[Link],
    checkpoints: Sequence[dict[str, Any]],
    device_key: str | None = None,
    *,
    after: tuple[int, str] = (0, GENESIS),
) -> ChainReport:
    """The core of :func:`verify_chain` over (seq, prev_hash, hash, text) in storage order."""
    first = after[0] + 1
    expected = first
    prev = after[1]
    wanted = {int(cp.get("seq", -1)) for cp in checkpoints if isinstance(cp.get("seq"), int)}
    hash_at: dict[int, str] = {after[0]: after[1]}
    bad: tuple[int, str, str] | None = None
    tag = _TAG
    for seq, prev_hash, stored, text in links:
        if seq != expected:
            later = {link[0] for link in links[expected - first + 1 :]}  # the rows after this one
            if expected in later:
                bad = (expected, "reorder", f"seq {expected} is stored out of order")
            elif isinstance(seq, int) and 1 <= seq < expected:
                bad = (expected, "reorder", f"seq {seq} appears again where {expected} belongs")
            else:
                bad = (expected, "gap", f"seq {expected} is missing")
            break
        if prev_hash != prev:
            bad = (expected, "hash_mismatch", f"seq {expected} does not link to the entry before it")
            break
        try:
            computed = sha256(tag + text.encode("utf-8")).hexdigest()
        except (AttributeError, UnicodeEncodeError):  # text None (malformed row) or not encodable
            computed = None
        if computed != stored:
            bad = (expected, "hash_mismatch", f"seq {expected} content does not match its hash")
            break
        prev = stored
        if seq in wanted:
            hash_at[seq] = prev
        expected += 1
    head_seq = expected - 1
    limit = bad[0] if bad else None
    for cp in sorted(checkpoints, key=lambda c: c.get("seq", 0) if isinstance(c.get("seq"), int) else 0):
        cp_seq = cp.get("seq")
        if not isinstance(cp_seq, int):
            continue
        if limit is not None and cp_seq >= limit:
            break
        if cp_seq < after[0]:
            continue  # before this batch: checked when that part was verified
        key = device_key or cp.get("device_key")
        signature = cp.get("signature")
        if (
            not isinstance(key, str)
            or cp.get("device_key") != key
            or not isinstance(signature, str)
            or not verify_payload(cp, signature, key, TYPE_CHECKPOINT)
        ):
            reason = f"checkpoint at seq {cp_seq} is not signed by the device"
            bad = (cp_seq, "bad_checkpoint_signature", reason)
            break
        if cp_seq > head_seq:
            if bad is None or head_seq + 1 < bad[0]:
                reason = f"checkpoint signed seq {cp_seq} but the chain ends at {head_seq}"
                bad = (head_seq + 1, "truncated", reason)
            break
        if hash_at.get(cp_seq) != cp.get("head_hash"):
            bad = (cp_seq, "hash_mismatch", f"chain at seq {cp_seq} differs from the signed checkpoint")
            break
    if bad is not None:
        return ChainReport(False, len(links), head_seq, prev, bad[0], bad[1], bad[2], len(checkpoints))
    return ChainReport(True, len(links), head_seq, prev, checkpoints=len(checkpoints))


class AuditLog:
    """One device's audit chain and nonce store, in one SQLite file."""

    def __init__(self, path: Path, *, device_id: str = "") -> None:
        self.path = path
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)
        self.nonces = NonceStore.on(self.conn)
        if device_id:
            self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('device_id', ?)", (device_id,))
        row = self.conn.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()
        self.device_id = device_id or (row[0] if row else path.stem)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM entries ORDER BY id DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def append(
        self,
        kind: str,
        request_id: str,
        capability: str,
        args_digest: str,
        status: str,
        *,
        approval: str | None = None,
        detail: str = "",
        nonce: str | None = None,
        keep_until: int | None = None,
        ts_ms: int | None = None,
    ) -> AuditEntry:
        if kind not in ("intent", "outcome", "event"):
            raise FnError("audit_invalid", f"unknown entry kind {kind!r}")
        # SQLite's length() stops at NUL, so NUL would make SQL_TEXT differ from entry_text:
        # store U+FFFD instead (an audit detail is for people; ids never hold NUL).
        request_id, capability, args_digest, status, detail = (
            v.replace("\x00", "\ufffd") for v in (request_id, capability, args_digest, status, detail)
        )
        if approval is not None:
            approval = approval.replace("\x00", "\ufffd")
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            seq, prev = self.head()
            seq += 1
            digest = entry_hash(
                seq, kind, ts, request_id, capability, args_digest, status, approval, detail, prev
            )
            if nonce is not None:
                self.nonces.insert(nonce, keep_until if keep_until is not None else ts // 1000 + 3600)
                if approval is not None and kind == "intent":
                    # One approval event runs one request: recorded with the nonce and the
                    # intent, so a replay under a fresh nonce fails here (rejected_approval).
                    self.nonces.insert_approval(approval, request_id, seq)
            self.conn.execute(
                f"INSERT INTO entries({COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                (seq, kind, ts, request_id, capability, args_digest, status, approval, detail, prev, digest),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        if nonce is not None:
            self.nonces.maybe_prune(ts // 1000)
        return AuditEntry(
            seq=seq,
            kind=kind,  # type: ignore[arg-type]
            ts_ms=ts,
            request_id=request_id,
            capability=capability,
            args_digest=args_digest,
            status=status,
            approval=approval,
            detail=detail,
            prev_hash=prev,
            hash=digest,
        )

    def append_intent(
        self,
        request_id: str,
        capability: str,
        args: Any,
        *,
        approval: str | None = None,
        nonce: str | None = None,
        keep_until: int | None = None,
        detail: str = "",
        ts_ms: int | None = None,
    ) -> AuditEntry:
        """Record that ``request_id`` is about to run (and consume its nonce, atomically)."""
        return self.append(
            "intent",
            request_id,
            capability,
            sha256_hex(canonical_bytes(args)),
            "started",
            approval=approval,
            detail=detail,
            nonce=nonce,
            keep_until=keep_until,
            ts_ms=ts_ms,
        )

    def append_outcome(
        self, request_id: str, capability: str, status: str, *, detail: str = "", ts_ms: int | None = None
    ) -> AuditEntry:
        """Record how ``request_id`` ended (``ok``, ``error``, ``timeout``, ...)."""
        return self.append("outcome", request_id, capability, "", status, detail=detail, ts_ms=ts_ms)

    def append_event(
        self, capability: str, status: str, *, request_id: str = "", detail: str = "", args: Any = None
    ) -> AuditEntry:
        """Record something that is not a request (a refusal, a key change, a restart)."""
        digest = "" if args is None else sha256_hex(canonical_bytes(args))
        return self.append("event", request_id, capability, digest, status, detail=detail)

    def rows(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(f"SELECT {COLUMNS} FROM entries ORDER BY id").fetchall()  # noqa: S608

    def entries(self) -> list[AuditEntry]:
        names = [c.strip() for c in COLUMNS.split(",")]
        rows = self.rows()
        return [parse(AuditEntry, dict(zip(names, r, strict=True)), code="audit_invalid") for r in rows]

    def pending(self) -> list[AuditEntry]:
        """Intents with no outcome: requests interrupted (or still running)."""
        done = {r[0] for r in self.conn.execute("SELECT request_id FROM entries WHERE kind='outcome'")}
        return [e for e in self.entries() if e.kind == "intent" and e.request_id not in done]

    def checkpoint(self, key: SigningKey, *, now: int | None = None) -> Checkpoint:
        """Sign the current head with the device key and keep the checkpoint."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            seq, head = self.head()
            body: dict[str, Any] = {
                "type": TYPE_CHECKPOINT,
                "device_id": self.device_id,
                "seq": seq,
                "head_hash": head,
                "created_at": int(time.time()) if now is None else now,
                "device_key": public_b64(key),
            }
            body["signature"] = sign_payload(body, key, TYPE_CHECKPOINT)
            cp = parse(Checkpoint, body, code="audit_invalid")
            self.conn.execute(
                "INSERT OR REPLACE INTO checkpoints(seq, body) VALUES(?, ?)",
                (seq, canonical_bytes(body).decode("utf-8")),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return cp

    def checkpoints(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for seq, body in self.conn.execute("SELECT seq, body FROM checkpoints ORDER BY seq"):
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, TypeError):
                data = None
            # A damaged row still counts, as a checkpoint whose signature cannot verify.
            out.append(data if isinstance(data, dict) else {"seq": seq, "signature": None})
        return out

    def verify(self, device_key: str | None = None) -> ChainReport:
        """Verify the stored chain and checkpoints (``device_key``: the expected signer)."""
        checkpoints = self.checkpoints()
        try:
            links = self.conn.execute(SQL_TEXT).fetchall()
        except (sqlite3.Error, UnicodeDecodeError):
            # Undecodable text (bytes written behind our back): the slow path marks the row.
            self.conn.text_factory = lambda b: b.decode("utf-8", "replace")
            try:
                return verify_chain(self.rows(), checkpoints, device_key)
            finally:
                self.conn.text_factory = str
        return verify_links(links, checkpoints, device_key)
