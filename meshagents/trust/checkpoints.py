"""Local signed checkpoints of an audit chain: an append-only, hash-linked file beside it.

Public API::

    checkpoints_path(chain) -> Path     # <chain without .sqlite>.checkpoints.jsonl
    manifests_path(chain) -> Path       # <chain without .sqlite>.manifests.jsonl
    CheckpointFile(path)
        .append(record) -> None         # one line, fsync'd; a torn tail is cut first
        .read() -> (records, torn)      # parsed lines (None for an unparsable one), torn last line?
    make_record(device_id, index, prev, seq, head_hash, key, now=None) -> dict    # pure
    line_hash(record) -> str            # what the next record's ``prev`` must be
    KeySchedule.from_manifests(manifests) / .key_at(t) -> str | None
    ManifestHistory(path).record(manifest) -> bool / .load() -> list[dict]
    schedule_from(manifest dicts, operator_keys, device_id) -> KeySchedule   # signed ones only
    check_file(records, device_id) -> (seq, problem, reason, index) | None       # pure

A record is a checkpoint (``meshagents.audit_checkpoint.v1``: device, seq, head_hash,
created_at, device_key) with two more signed fields: ``index`` (1, 2, ...) and
``prev``, the sha256 of the previous record's canonical bytes (64 zeros for the
first). An attacker who can edit the SQLite file can rewrite the chain and its
``checkpoints`` table together; the records here are signed one by one and linked,
so dropping one from the middle breaks ``index``/``prev``, and dropping the tail is
caught by the ``audit.checkpoint`` entries the chain itself holds (see audit.py).
Only a tail cut of both files at once, re-hashed, needs the hub's copy to be seen.

Crash safety: a record is written with one ``write`` on an ``O_APPEND`` descriptor and
fsync'd before the chain records that it exists. A ``kill -9`` mid-write leaves at
most a last line without its newline: readers ignore it (``torn``), the next writer
cuts it. Nothing that was acknowledged is ever in a torn line.

Key changes (journald CVE-2023-31439: old entries re-sealed with a newer key passed):
the key allowed for a record is the ``device_key`` of the manifest in force at its
``created_at`` — the operator-signed manifest with the highest serial issued at or
before that time. A record signed by any other key is ``checkpoint_key_refused``,
however valid its signature.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.canonical import canonical_bytes, sha256_hex
from meshagents.trust.models import Manifest
from meshagents.trust.signing import TYPE_CHECKPOINT, public_b64, sign_payload

GENESIS = "0" * 64


def _base(chain: Path) -> str:
    name = chain.name
    return name[: -len(".sqlite")] if name.endswith(".sqlite") else name


def checkpoints_path(chain: Path) -> Path:
    return chain.with_name(_base(chain) + ".checkpoints.jsonl")


def manifests_path(chain: Path) -> Path:
    return chain.with_name(_base(chain) + ".manifests.jsonl")


def line_hash(record: dict[str, Any]) -> str:
    return sha256_hex(canonical_bytes(record))


def make_record(
    device_id: str,
    index: int,
    prev: str,
    seq: int,
    head_hash: str,
    key: SigningKey,
    now: int | None = None,
) -> dict[str, Any]:
    return sign_checkpoint(device_id, seq, head_hash, key, now, index=index, prev=prev)


def sign_checkpoint(
    device_id: str, seq: int, head_hash: str, key: SigningKey, now: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A device-signed checkpoint of the head at ``seq``: the local file's records add
    ``index`` and ``prev`` (``make_record``); the copy shipped to the hub has neither."""
    body: dict[str, Any] = {
        "type": TYPE_CHECKPOINT,
        "device_id": device_id,
        **extra,
        "seq": seq,
        "head_hash": head_hash,
        "created_at": int(time.time()) if now is None else now,
        "device_key": public_b64(key),
    }
    body["signature"] = sign_payload(body, key, TYPE_CHECKPOINT)
    return body


class CheckpointFile:
    """The append-only checkpoint file of one chain."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[list[dict[str, Any] | None], bool]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], False
        lines = data.split(b"\n")
        torn = lines[-1] != b""  # the last line has no newline: a write cut by a crash
        out: list[dict[str, Any] | None] = []
        for raw in lines[:-1]:
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                rec = None
            out.append(rec if isinstance(rec, dict) else None)
        return out, torn

    def _cut_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        # Read back from the end to the last newline; whatever follows it was never acknowledged.
        chunk = min(size, 1 << 16)
        os.lseek(fd, size - chunk, os.SEEK_SET)
        tail = os.read(fd, chunk)
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = (size - chunk + cut + 1) if cut >= 0 else 0
        os.ftruncate(fd, keep)
        os.fsync(fd)

    def append(self, record: dict[str, Any]) -> None:
        line = canonical_bytes(record) + b"\n"
        new = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._cut_torn_tail(fd)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:  # the file's directory entry must survive a power cut too
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


@dataclass(frozen=True)
class KeySchedule:
    """Which device key a manifest named from when: ((issued_at, serial, device_key), ...)."""

    spans: tuple[tuple[int, int, str], ...]

    @classmethod
    def from_manifests(cls, manifests: Sequence[Manifest]) -> KeySchedule:
        by_serial = {m.serial: m for m in manifests}
        return cls(tuple(sorted((m.issued_at, m.serial, m.device_key) for m in by_serial.values())))

    def key_at(self, t: int) -> str | None:
        """The device key of the manifest in force at ``t`` (the first one before any was issued)."""
        if not self.spans:
            return None
        best: tuple[int, int, str] | None = None
        for span in self.spans:
            if span[0] <= t and (best is None or span[1] > best[1]):
                best = span
        return (best or min(self.spans, key=lambda s: s[1]))[2]

    def named_keys(self) -> set[str]:
        return {s[2] for s in self.spans}


Problem = tuple[int, str, str, int]  # (seq, problem code, reason, checkpoint index)


def check_file(records: Sequence[dict[str, Any] | None], device_id: str) -> Problem | None:
    """Structure of the file alone: parsable, indices 1.., hash-linked, seq and time not going back.

    Signatures and the chain hashes are checked with the chain (``audit.verify_links``).
    """
    prev = GENESIS
    last_seq = 0
    last_t: int | None = None
    for i, rec in enumerate(records, start=1):
        if rec is None:
            return (last_seq + 1, "checkpoint_invalid", f"checkpoint line {i} is not a JSON object", i)
        seq, index, t = rec.get("seq"), rec.get("index"), rec.get("created_at")
        if type(seq) is not int or type(index) is not int or type(t) is not int:
            return (last_seq + 1, "checkpoint_invalid", f"checkpoint line {i} lacks seq/index/created_at", i)
        if rec.get("device_id") != device_id:
            return (seq, "checkpoint_invalid", f"checkpoint #{index} is for {rec.get('device_id')!r}", i)
        if index != i:
            what = "dropped" if index > i else "repeated"
            return (seq, "checkpoint_dropped", f"checkpoint #{i} is {what} (found #{index} at line {i})", i)
        if rec.get("prev") != prev:
            return (seq, "checkpoint_chain_broken", f"checkpoint #{i} does not link to #{i - 1}", i)
        if seq < last_seq or (last_t is not None and t < last_t):
            return (seq, "checkpoint_chain_broken", f"checkpoint #{i} goes back in seq or time", i)
        prev = line_hash(rec)
        last_seq, last_t = seq, t
    return None


class ManifestHistory:
    """The operator-signed manifests the agent ran under, one canonical JSON a line.

    The agent appends each manifest the first time it signs a checkpoint under it; a
    verifier builds the :class:`KeySchedule` from the lines whose operator signature
    verifies (anything else here is ignored: only the operator can name a device key).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._serials: set[int] | None = None

    def load(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for raw in lines:
            try:
                data = json.loads(raw) if raw.strip() else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(data, dict):
                out.append(data)
        return out

    def record(self, manifest: Manifest) -> bool:
        """Append ``manifest`` unless its serial is already here; True when appended."""
        if self._serials is None:
            self._serials = {m["serial"] for m in self.load() if type(m.get("serial")) is int}
        if manifest.serial in self._serials:
            return False
        CheckpointFile(self.path).append(manifest.model_dump(mode="json"))
        self._serials.add(manifest.serial)
        return True


def schedule_from(
    manifests: Sequence[dict[str, Any]], operator_keys: Sequence[str], device_id: str
) -> KeySchedule:
    """The key schedule of the manifests signed by one of ``operator_keys`` for ``device_id``."""
    good: list[Manifest] = []
    for data in manifests:
        for op in operator_keys:
            try:
                m = trust_manifest.verify(data, op)
            except FnError:
                continue
            if m.device_id == device_id:
                good.append(m)
            break
    return KeySchedule.from_manifests(good)
