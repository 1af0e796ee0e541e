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
    .entries_after(seq, n) -> list[dict]   # the next n rows as stored (what the agent ships)
    .request_ids(kind, status=None) -> set[str]
    ENTRY_COLUMNS / ENTRY_FIELDS / entry_columns_sql()   # the entry's row: one definition
    .checkpoint(key: SigningKey) -> Checkpoint; .checkpoints() -> list[dict]   # the table
    .seal(key, *, now=None, force=False) -> dict | None   # a record in the checkpoint FILE
    .unsealed() -> int                                    # entries since the last record
    .verify(device_key=None, *, schedule=None) -> ChainReport   # chain + table + file
    .links() -> list[Link]                                # for compare_with_hub
    verify_chain(rows, checkpoints, device_key=None, *, after=(0, GENESIS)) -> ChainReport  # pure
    verify_local(links, table_cps, records, events, device_id, device_key=None, *,
                 torn=False, schedule=None) -> ChainReport                       # pure
    compare_with_hub(links, hub_entries, hub_checkpoints) -> (seq, problem, reason, None) | None
    entry_hash(seq, kind, ts_ms, request_id, capability, args_digest, status, approval,
               detail, prev_hash) -> str
    ChainReport(ok, entries, head_seq, head_hash, first_bad_seq, problem, reason, checkpoints,
                checkpoint_file, torn_checkpoint, checkpoint_index, hub_head_seq)
        # problem: hash_mismatch | gap | reorder | bad_checkpoint_signature | truncated
        #   | checkpoint_key_refused | checkpoint_invalid | checkpoint_dropped
        #   | checkpoint_chain_broken | checkpoint_missing | hub_mismatch

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

Local checkpoints (``seal``) go to a separate append-only file beside the chain
(``meshagents/trust/checkpoints.py``), each record signed and hash-linked to the one
before; after each record the chain gets an ``event`` entry, capability
``audit.checkpoint``, detail ``checkpoint #<index> at seq <seq>``. So: a tail cut after
a checkpoint is ``truncated``; a row edited and the rest re-hashed is ``hash_mismatch``
at the first checkpoint it contradicts; a record dropped from the file is
``checkpoint_dropped``; the file deleted or cut is ``checkpoint_missing`` at the seq of
the first record the chain names; a record signed by a key that no manifest named at
its time is ``checkpoint_key_refused``. Cutting both files consistently (chain tail and
its records) is seen only by ``compare_with_hub``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, ParamSpec

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.approval import args_digest as digest_args
from meshagents.trust.canonical import canonical_bytes
from meshagents.trust.checkpoints import (
    CheckpointFile,
    KeySchedule,
    check_file,
    checkpoints_path,
    line_hash,
    make_record,
)
from meshagents.trust.db import connect
from meshagents.trust.models import AuditEntry, Checkpoint, parse
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import TYPE_CHECKPOINT, public_b64, sign_payload, verify_payload

P = ParamSpec("P")

GENESIS = "0" * 64
_TAG = b"meshagents-audit-v1\x00"
#: An entry's fields in chain order with their SQLite column types: the one definition of
#: an audit entry's row, here (``AuditEntry`` is its model) and in every copy a hub keeps
#: (``meshagents/apps/wg_hub/store.py`` builds its ``device_audit`` table from it). The
#: hash covers these fields, so they change only with a new chain version.
ENTRY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "INTEGER NOT NULL"),
    ("kind", "TEXT NOT NULL"),
    ("ts_ms", "INTEGER NOT NULL"),
    ("request_id", "TEXT NOT NULL"),
    ("capability", "TEXT NOT NULL"),
    ("args_digest", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("approval", "TEXT"),
    ("detail", "TEXT NOT NULL"),
    ("prev_hash", "TEXT NOT NULL"),
    ("hash", "TEXT NOT NULL"),
)
ENTRY_FIELDS: tuple[str, ...] = tuple(name for name, _ in ENTRY_COLUMNS)
COLUMNS = ", ".join(ENTRY_FIELDS)


def entry_columns_sql(indent: str = "    ") -> str:
    """The entry's column definitions for a ``CREATE TABLE`` (one per line, comma-ended)."""
    return "".join(f"{indent}{name} {kind},\n" for name, kind in ENTRY_COLUMNS)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
{entry_columns_sql().rstrip().rstrip(",")}
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
    """The injective text an entry's hash covers (``walk_store`` builds the same inline)."""
    if type(seq) is not int or type(ts_ms) is not int:
        raise TypeError("seq and ts_ms must be integers")
    ap = "~" if approval is None else f"{len(approval)}:{approval}"
    return (
        f"{seq};{ts_ms};{len(kind)}:{kind}{len(request_id)}:{request_id}{len(capability)}:{capability}"
        f"{len(args_digest)}:{args_digest}{len(status)}:{status}{ap}{len(detail)}:{detail}{prev_hash}"
    )


def _hashed(text_of: Callable[P, str]) -> Callable[P, str]:
    """The hash of an entry, taking the same parameters as its text (one parameter list)."""

    @functools.wraps(text_of)
    def hash_of(*args: P.args, **kwargs: P.kwargs) -> str:
        return sha256(_TAG + text_of(*args, **kwargs).encode("utf-8")).hexdigest()

    hash_of.__doc__ = "The hash an entry's row carries: sha256 over a tag and :func:`entry_text`."
    return hash_of


entry_hash = _hashed(entry_text)


#: Every column the hash covers, in storage order: read as stored, the text built in Python
#: exactly as :func:`entry_text` does (SQLite's length() and printf() stop at a NUL, so a
#: text built in SQL disagrees with entry_text on a field that holds one).
_WALK_SQL = (
    "SELECT seq, kind, ts_ms, request_id, capability, args_digest, status, approval, detail,"
    " prev_hash, hash FROM entries ORDER BY id"
)


@dataclass(frozen=True)
class Walk:
    """What walking a chain found: rows seen, the head, the first problem, the hashes at
    the seqs asked for (checkpoints), and the chain's own checkpoint entries when known."""

    count: int
    head_seq: int
    head_hash: str
    bad: tuple[int, str, str] | None
    hash_at: dict[int, str]
    events: list[tuple[int, str]] | None = None


def walk_store(conn: sqlite3.Connection, wanted: set[int], *, batch: int = 512) -> Walk | None:
    """Stream the stored chain from genesis and check each row's place, link and hash as
    :func:`verify_links` does, without building a link per row: the Walk when every row
    is good, None at the first that is not (the caller then lets verify_links say why).

    One query, rows read in batches (no per-row objects kept), the hashed text built
    inline in the form of :func:`entry_text` (type checks included: a row entry_text
    refuses is not good here either), the chain's checkpoint entries gathered on the way.
    Raises sqlite3.Error / UnicodeDecodeError like a plain read (undecodable text).
    """
    cur = conn.execute(_WALK_SQL)
    fetch = cur.fetchmany
    tag, sha, cp_event = _TAG, sha256, CHECKPOINT_EVENT
    expected, prev = 1, GENESIS
    hash_at: dict[int, str] = {0: GENESIS}
    events: list[tuple[int, str]] = []
    while rows := fetch(batch):
        for seq, kind, ts, rid, cap, dig, st, ap, det, ph, stored in rows:
            if seq != expected or ph != prev or type(seq) is not int or type(ts) is not int:
                return None
            try:
                a = "~" if ap is None else f"{len(ap)}:{ap}"
                text = (
                    f"{seq};{ts};{len(kind)}:{kind}{len(rid)}:{rid}{len(cap)}:{cap}"
                    f"{len(dig)}:{dig}{len(st)}:{st}{a}{len(det)}:{det}{ph}"
                )
                if sha(tag + text.encode("utf-8")).hexdigest() != stored:
                    return None
            except (TypeError, ValueError):  # not text where entry_text needs text
                return None
            prev = stored
            if seq in wanted:
                hash_at[seq] = stored
            if cap == cp_event and kind == "event":
                events.append((seq, det))
            expected += 1
    return Walk(expected - 1, expected - 1, prev, None, hash_at, events)


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
    #: records in the local checkpoint file (``<chain>.checkpoints.jsonl``) and whether its
    #: last line was torn by a crash (ignored: it was never acknowledged)
    checkpoint_file: int = 0
    torn_checkpoint: bool = False
    #: the checkpoint record (1-based index in the file) a checkpoint problem is about
    checkpoint_index: int | None = None
    #: entries and head the hub holds, when checked ``against_hub``
    hub_head_seq: int | None = None


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


def walk_links(links: Sequence[Link], wanted: set[int], after: tuple[int, str] = (0, GENESIS)) -> Walk:
    """Check each link's place, link and hash in storage order; the first problem wins."""
    first = after[0] + 1
    expected = first
    prev = after[1]
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
    return Walk(len(links), expected - 1, prev, bad, hash_at)


def checkpoint_seqs(checkpoints: Sequence[dict[str, Any]]) -> set[int]:
    return {int(cp.get("seq", -1)) for cp in checkpoints if isinstance(cp.get("seq"), int)}


def verify_links(
    links: Sequence[Link],
    checkpoints: Sequence[dict[str, Any]],
    device_key: str | None = None,
    *,
    after: tuple[int, str] = (0, GENESIS),
    schedule: KeySchedule | None = None,
    walked: Walk | None = None,
) -> ChainReport:
    """The core of :func:`verify_chain` over (seq, prev_hash, hash, text) in storage order.

    ``schedule``: which device key the manifests named when; a checkpoint signed by
    another key for its ``created_at`` is ``checkpoint_key_refused`` (even if pinned).
    ``walked``: the chain already walked (:func:`walk_store`, every row good), so only
    the checkpoints are left to check; ``links`` is then not read.
    """
    walk = walked if walked is not None else walk_links(links, checkpoint_seqs(checkpoints), after)
    head_seq, prev, bad, hash_at = walk.head_seq, walk.head_hash, walk.bad, walk.hash_at
    limit = bad[0] if bad else None
    for cp in sorted(checkpoints, key=lambda c: c.get("seq", 0) if isinstance(c.get("seq"), int) else 0):
        cp_seq = cp.get("seq")
        if not isinstance(cp_seq, int):
            continue
        if limit is not None and cp_seq >= limit:
            break
        if cp_seq < after[0]:
            continue  # before this batch: checked when that part was verified
        signature = cp.get("signature")
        if schedule is not None and schedule.spans:
            created = cp.get("created_at")
            named = schedule.key_at(created) if type(created) is int else None
            if named is None or cp.get("device_key") != named:
                reason = f"checkpoint at seq {cp_seq} is signed by a key no manifest named at its time"
                bad = (cp_seq, "checkpoint_key_refused", reason)
                break
            key: Any = named
        else:
            key = device_key or cp.get("device_key")
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
        return ChainReport(False, walk.count, head_seq, prev, bad[0], bad[1], bad[2], len(checkpoints))
    return ChainReport(True, walk.count, head_seq, prev, checkpoints=len(checkpoints))


CHECKPOINT_EVENT = "audit.checkpoint"
_CP_DETAIL = re.compile(r"^checkpoint #(\d+) at seq (\d+)$")


def checkpoint_detail(index: int, seq: int) -> str:
    return f"checkpoint #{index} at seq {seq}"


Found = tuple[int, str, str, int | None]  # (seq, problem, reason, checkpoint index)


def verify_local(
    links: Sequence[Link],
    table_checkpoints: Sequence[dict[str, Any]],
    records: Sequence[dict[str, Any] | None],
    events: Sequence[tuple[int, str]],
    device_id: str,
    device_key: str | None = None,
    *,
    torn: bool = False,
    schedule: KeySchedule | None = None,
    walked: Walk | None = None,
) -> ChainReport:
    """The chain, its ``checkpoints`` table, the checkpoint file and the chain's own
    ``audit.checkpoint`` entries (``events``: (seq, detail)), together; the lowest bad seq wins.

    Problems beyond :func:`verify_links`: ``checkpoint_invalid``, ``checkpoint_dropped``,
    ``checkpoint_chain_broken`` (the file's structure), ``checkpoint_missing`` (the chain
    says a checkpoint was written that the file no longer holds: file deleted or cut).
    """
    structure = check_file(records, device_id)
    usable = [r for r in (records[: structure[3] - 1] if structure else records) if r is not None]
    report = verify_links(links, [*table_checkpoints, *usable], device_key, schedule=schedule, walked=walked)
    found: list[Found] = []
    if not report.ok and report.first_bad_seq is not None and report.problem is not None:
        found.append((report.first_bad_seq, report.problem, report.reason, None))
    named: list[tuple[int, int, int]] = []  # (entry seq, record index, record seq) the chain names
    for ev_seq, detail in events:
        m = _CP_DETAIL.match(detail) if isinstance(detail, str) else None
        if m is not None:
            named.append((ev_seq, int(m[1]), int(m[2])))
    if structure is not None:
        if structure[1] == "checkpoint_invalid":
            # an unreadable record has no seq of its own: the chain's entry for it knows it
            at = next((n[2] for n in named if n[1] == structure[3]), structure[0])
            structure = (at, *structure[1:])
        found.append(structure)
    by_index = {r.get("index"): r for r in usable}
    for ev_seq, k, at in named:
        rec = by_index.get(k)
        if rec is None or rec.get("seq") != at:
            reason = f"entry {ev_seq} records checkpoint #{k} at seq {at}, which the checkpoint file lacks"
            found.append((at, "checkpoint_missing", reason, k))
            break
    extra = {"checkpoint_file": len(records), "torn_checkpoint": torn}
    if not found:
        return dataclasses.replace(report, **extra)  # type: ignore[arg-type]
    seq, problem, reason, index = min(found, key=lambda f: f[0])  # min keeps the first of a tie
    return dataclasses.replace(
        report,
        ok=False,
        first_bad_seq=seq,
        problem=problem,
        reason=reason,
        checkpoint_index=index,
        **extra,  # type: ignore[arg-type]
    )


def compare_with_hub(
    links: Sequence[Link], hub_entries: Sequence[tuple[int, str]], hub_checkpoints: Sequence[dict[str, Any]]
) -> Found | None:
    """The device's chain against the hub's copy: every seq the hub holds must have the
    same hash here (``hub_mismatch``), and the chain must reach the hub's head (``truncated``)."""
    local = {link[0]: link[2] for link in links if isinstance(link[0], int)}
    head = 0
    while head + 1 in local:
        head += 1
    points = sorted(
        [(s, h, "entry") for s, h in hub_entries]
        + [(c["seq"], c.get("head_hash"), "checkpoint") for c in hub_checkpoints if type(c.get("seq")) is int]
    )
    for seq, digest, what in points:
        if seq == 0:
            continue
        if seq > head:
            return (
                head + 1,
                "truncated",
                f"the hub holds seq {seq} but the device's chain ends at {head}",
                None,
            )
        if local.get(seq) != digest:
            return (seq, "hub_mismatch", f"seq {seq} differs from the {what} the hub holds", None)
    return None


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
        self._sealed: tuple[int, dict[str, Any] | None] | None = None  # (records, last) of the file

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
        # A NUL is stored as U+FFFD (an audit detail is for people; ids never hold NUL, and
        # C-string tools such as sqlite3's own length() stop at one). The verifier reads a
        # row that holds one anyway (written behind our back) exactly: see walk_store.
        request_id, capability, args_digest, status, detail = (
            v.replace("\x00", "\ufffd") for v in (request_id, capability, args_digest, status, detail)
        )
        if approval is not None:
            approval = approval.replace("\x00", "\ufffd")
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        keep = keep_until if keep_until is not None else ts // 1000 + 3600
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            seq, prev = self.head()
            seq += 1
            digest = entry_hash(
                seq, kind, ts, request_id, capability, args_digest, status, approval, detail, prev
            )
            if nonce is not None:
                self.nonces.insert(nonce, keep)
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
            self.nonces.remember(nonce, keep)  # committed: known to envelope.verify from now on
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
            digest_args(args),
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
        digest = "" if args is None else digest_args(args)
        return self.append("event", request_id, capability, digest, status, detail=detail)

    def rows(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(f"SELECT {COLUMNS} FROM entries ORDER BY id").fetchall()  # noqa: S608

    def entries(self) -> list[AuditEntry]:
        rows = self.rows()
        return [
            parse(AuditEntry, dict(zip(ENTRY_FIELDS, r, strict=True)), code="audit_invalid") for r in rows
        ]

    def entries_after(self, seq: int, n: int) -> list[dict[str, Any]]:
        """At most ``n`` entries with a sequence number above ``seq``, in order, as stored
        (plain dicts keyed by :data:`ENTRY_FIELDS`, not re-validated: what is shipped is
        exactly what the chain holds, so the hub sees a damaged row as it is)."""
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
            (seq, n),
        ).fetchall()
        return [dict(zip(ENTRY_FIELDS, r, strict=True)) for r in rows]

    def request_ids(self, kind: str, status: str | None = None) -> set[str]:
        """The request ids of the entries of ``kind`` (and ``status``, when given)."""
        if status is None:
            rows = self.conn.execute("SELECT request_id FROM entries WHERE kind=?", (kind,))
        else:
            rows = self.conn.execute(
                "SELECT request_id FROM entries WHERE kind=? AND status=?", (kind, status)
            )
        return {r[0] for r in rows}

    def pending(self) -> list[AuditEntry]:
        """Intents with no outcome: requests interrupted (or still running)."""
        done = self.request_ids("outcome")
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

    # ------------------------------------------------------------ local signed checkpoints
    @property
    def checkpoint_file(self) -> CheckpointFile:
        return CheckpointFile(checkpoints_path(self.path))

    def checkpoint_events(self) -> list[tuple[int, str]]:
        return self.conn.execute(
            "SELECT seq, detail FROM entries WHERE kind='event' AND capability=? ORDER BY id",
            (CHECKPOINT_EVENT,),
        ).fetchall()

    def _last_record(self) -> tuple[int, dict[str, Any] | None]:
        if self._sealed is None:
            records, _torn = self.checkpoint_file.read()
            self._sealed = (len(records), records[-1] if records else None)
        return self._sealed

    def unsealed(self) -> int:
        """Entries after the last local checkpoint (its own ``audit.checkpoint`` entry not counted)."""
        count, last = self._last_record()
        seq, _ = self.head()
        if last is None or type(last.get("seq")) is not int:
            return seq
        after = seq - int(last["seq"])
        if after >= 1:
            row = self.conn.execute(
                "SELECT capability, detail FROM entries WHERE seq=? ORDER BY id DESC LIMIT 1",
                (int(last["seq"]) + 1,),
            ).fetchone()
            if (
                row is not None
                and row[0] == CHECKPOINT_EVENT
                and row[1] == checkpoint_detail(count, last["seq"])
            ):
                after -= 1
        return after

    def seal(self, key: SigningKey, *, now: int | None = None, force: bool = False) -> dict[str, Any] | None:
        """Sign the head into the local checkpoint file, then record it in the chain.

        Returns the record, or None when nothing was appended since the last one (unless
        ``force``). Order matters for crashes: the record is fsync'd before the chain's
        ``audit.checkpoint`` entry names it, so the chain never names a record that is lost.
        """
        if not force and self.unsealed() == 0:
            return None
        count, last = self._last_record()
        seq, head = self.head()
        record = make_record(
            self.device_id, count + 1, GENESIS if last is None else line_hash(last), seq, head, key, now
        )
        self.checkpoint_file.append(record)
        self._sealed = (count + 1, record)
        self.append_event(CHECKPOINT_EVENT, "signed", detail=checkpoint_detail(count + 1, seq))
        return record

    def verify(self, device_key: str | None = None, *, schedule: KeySchedule | None = None) -> ChainReport:
        """Verify the stored chain, its checkpoints table and the local checkpoint file.

        ``device_key``: the expected signer when no ``schedule`` (manifests) is known.
        """
        checkpoints = self.checkpoints()
        records, torn = self.checkpoint_file.read()
        # Every seq a checkpoint names (those of the file past a damaged record included:
        # a hash recorded and not asked for changes nothing).
        wanted = checkpoint_seqs(checkpoints) | checkpoint_seqs([r for r in records if r is not None])
        walked: Walk | None = None
        links: list[Link] = []
        try:
            walked = walk_store(self.conn, wanted)
            if walked is None:  # a bad row somewhere: the exact path says which and why
                links = [(r[0], r[9], r[10], _row_text(r)) for r in self.rows()]
            found = walked.events if walked is not None else None
            events = found if found is not None else self.checkpoint_events()
        except (sqlite3.Error, UnicodeDecodeError):
            # Undecodable text (bytes written behind our back): the slow path marks the row.
            walked = None
            self.conn.text_factory = lambda b: b.decode("utf-8", "replace")
            try:
                links = [(r[0], r[9], r[10], _row_text(r)) for r in self.rows()]
                events = self.checkpoint_events()
            finally:
                self.conn.text_factory = str
        return verify_local(
            links, checkpoints, records, events, self.device_id, device_key, torn=torn, schedule=schedule,
            walked=walked,
        )  # fmt: skip

    def links(self) -> list[Link]:
        """(seq, prev_hash, hash, hashed text) in storage order, for :func:`compare_with_hub`."""
        self.conn.text_factory = lambda b: b.decode("utf-8", "replace")
        try:
            return [(r[0], r[9], r[10], None) for r in self.rows()]
        finally:
            self.conn.text_factory = str
