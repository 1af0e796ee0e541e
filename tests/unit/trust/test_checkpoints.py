"""Local signed checkpoints: each attack on the device's files is caught at the right seq."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from unittest.mock import ANY

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.trust.audit import AuditLog, compare_with_hub
from meshagents.trust.checkpoints import (
    CheckpointFile,
    KeySchedule,
    ManifestHistory,
    check_file,
    checkpoints_path,
    manifests_path,
    schedule_from,
)
from meshagents.trust.models import Manifest
from meshagents.trust.signing import public_b64
from tests.testbed import tamper
from tests.testbed.trust_keys import Keys

pytestmark = pytest.mark.unit

DEV = "dev-0001"


def grow(log: AuditLog, n: int, tag: str = "r") -> None:
    for i in range(n):
        log.append_intent(f"{tag}{i}", "shell.exec.ls", {"argv": ["ls", str(i)]})
        log.append_outcome(f"{tag}{i}", "shell.exec.ls", "ok")


def chain(tmp_path: Path, key: SigningKey) -> Path:
    """20 entries, checkpoint #1 at seq 20 (its entry at 21), 10 more, #2 at 31 (entry 32), 6 more."""
    path = tmp_path / f"{DEV}.sqlite"
    with AuditLog(path, device_id=DEV) as log:
        grow(log, 10, "a")
        assert log.seal(key, now=1000) is not None
        grow(log, 5, "b")
        assert log.seal(key, now=2000) is not None
        grow(log, 3, "c")
        assert log.head()[0] == 38
    return path


def verify(path: Path, key: str | None = None, schedule: KeySchedule | None = None) -> tuple[object, ...]:
    with AuditLog(path) as log:
        r = log.verify(key, schedule=schedule)
    return (r.ok, r.first_bad_seq, r.problem)


def test_seal_records_and_verifies(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    recs = tamper.records(path)
    assert [(r["index"], r["seq"]) for r in recs] == [(1, 20), (2, 31)]
    with AuditLog(path) as log:
        r = log.verify(keys.dev_pub)
        assert r.ok and r.checkpoint_file == 2 and not r.torn_checkpoint
        assert log.unsealed() == 6
        assert log.seal(keys.device) is not None and log.unsealed() == 0
        assert log.seal(keys.device) is None  # nothing new: no record, no entry
        assert log.head()[0] == 39


def test_tail_cut_after_a_checkpoint_is_truncated(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    tamper.cut_tail(path, 27)  # checkpoint #2 signed seq 31
    assert verify(path, keys.dev_pub) == (False, 28, "truncated")


def test_checkpoint_file_deleted_is_missing_at_first_record(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    checkpoints_path(path).unlink()
    assert verify(path, keys.dev_pub) == (False, 20, "checkpoint_missing")


def test_checkpoint_file_tail_cut_is_missing(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    tamper.write_records(path, tamper.records(path)[:1])
    assert verify(path, keys.dev_pub) == (False, 31, "checkpoint_missing")


def test_record_dropped_from_the_middle(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    tamper.drop_record(path, 1)
    # the chain's own entry 21 names record #1 at seq 20: that is the first seq it no longer vouches for
    assert verify(path, keys.dev_pub) == (False, 20, "checkpoint_missing")
    # the file alone (its chain entries gone too) still shows the hole
    assert check_file(tamper.records(path), DEV) == (31, "checkpoint_dropped", ANY, 1)


def test_edited_row_rehashed_caught_at_the_checkpoint_after_it(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    tamper.edit_and_rehash(path, 5, "nothing happened")
    assert verify(path, keys.dev_pub) == (False, 20, "hash_mismatch")
    tamper.edit_and_rehash(path, 5, "")  # back, then edit after checkpoint #1
    tamper.edit_and_rehash(path, 25, "nothing happened")
    assert verify(path, keys.dev_pub) == (False, 31, "hash_mismatch")


def _manifests(keys: Keys, make: Callable[..., Manifest], new: SigningKey) -> list[Manifest]:
    return [
        make(device_id=DEV, serial=1, issued_at=500, device_key=keys.dev_pub),
        make(device_id=DEV, serial=2, issued_at=1500, device_key=public_b64(new)),
    ]


def test_key_schedule(keys: Keys, make_manifest: Callable[..., Manifest]) -> None:
    new = SigningKey.generate()
    s = KeySchedule.from_manifests(_manifests(keys, make_manifest, new))
    assert s.key_at(100) == keys.dev_pub  # before any manifest: the first one's key
    assert s.key_at(1499) == keys.dev_pub and s.key_at(1500) == public_b64(new)
    forged = make_manifest(device_id=DEV, serial=3, issued_at=1600, device_key=public_b64(new))
    other = SigningKey.generate()
    body = forged.model_dump(mode="json") | {"device_key": public_b64(other)}  # signature no longer fits
    got = schedule_from([m.model_dump(mode="json") for m in _manifests(keys, make_manifest, new)] + [body],
                        [keys.op_pub], DEV)  # fmt: skip
    assert public_b64(other) not in got.named_keys() and len(got.spans) == 2


def test_old_checkpoints_resigned_with_a_new_key_are_refused(
    tmp_path: Path, keys: Keys, make_manifest: Callable[..., Manifest]
) -> None:
    """journald CVE-2023-31439: the new key must not vouch for a time it was not named."""
    new = SigningKey.generate()
    schedule = KeySchedule.from_manifests(_manifests(keys, make_manifest, new))
    path = chain(tmp_path, keys.device)  # #1 at t=1000 (old key's time), #2 at t=2000 (new key's)
    assert verify(path, schedule=schedule) == (False, 31, "checkpoint_key_refused")  # #2 made by the old key
    tamper.resign_records(path, new, DEV)
    assert verify(path, schedule=schedule) == (False, 20, "checkpoint_key_refused")
    assert verify(path, public_b64(new)) == (True, None, None)  # a pinned new key alone would pass


def test_right_keys_for_their_times_pass(
    tmp_path: Path, keys: Keys, make_manifest: Callable[..., Manifest]
) -> None:
    new = SigningKey.generate()
    schedule = KeySchedule.from_manifests(_manifests(keys, make_manifest, new))
    path = tmp_path / f"{DEV}.sqlite"
    with AuditLog(path, device_id=DEV) as log:
        grow(log, 3)
        log.seal(keys.device, now=1000)
        grow(log, 3, "n")
        log.seal(new, now=1600)
    assert verify(path, schedule=schedule) == (True, None, None)


def test_torn_last_record_is_ignored_then_cut(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    with checkpoints_path(path).open("ab") as f:
        f.write(b'{"created_at":3000,"device_id":"dev-0001","dev')  # a kill -9 mid-write
    with AuditLog(path) as log:
        r = log.verify(keys.dev_pub)
        assert r.ok and r.torn_checkpoint and r.checkpoint_file == 2
        assert log.seal(keys.device) is not None
    recs = tamper.records(path)
    assert [r["index"] for r in recs] == [1, 2, 3]
    assert verify(path, keys.dev_pub) == (True, None, None)


def test_manifest_history_records_each_serial_once(
    tmp_path: Path, keys: Keys, make_manifest: Callable[..., Manifest]
) -> None:
    hist = ManifestHistory(manifests_path(tmp_path / "d.sqlite"))
    m1 = make_manifest(device_id=DEV, serial=1)
    assert hist.record(m1) and not hist.record(m1)
    assert not ManifestHistory(hist.path).record(m1)  # a restart reads what is there
    assert ManifestHistory(hist.path).record(make_manifest(device_id=DEV, serial=2))
    assert [m["serial"] for m in hist.load()] == [1, 2]


def test_against_hub_catches_a_rewrite_both_files_agree_on(tmp_path: Path, keys: Keys) -> None:
    path = chain(tmp_path, keys.device)
    hub_entries = sorted(tamper.hashes(path).items())[:32]  # the hub got everything up to 32
    tamper.edit_and_rehash(path, 7, "nothing happened")
    tamper.resign_records(path, keys.device, DEV)  # the thief holds the device key
    assert verify(path, keys.dev_pub) == (True, None, None)  # the local files alone agree
    with AuditLog(path) as log:
        assert compare_with_hub(log.links(), hub_entries, []) == (
            7,
            "hub_mismatch",
            "seq 7 differs from the entry the hub holds",
            None,
        )
    tamper.cut_tail(path, 29)
    tamper.resign_records(path, keys.device, DEV)
    with AuditLog(path) as log:
        got = compare_with_hub(log.links(), [(s, h) for s, h in hub_entries if s < 7], [])
        assert got is None
        got = compare_with_hub(log.links(), [], [{"seq": 32, "head_hash": hub_entries[-1][1]}])
        assert got is not None and got[:2] == (30, "truncated")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(0, 1), pos=st.integers(0, 10_000), byte=st.integers(1, 255))
def test_any_changed_byte_of_a_record_is_caught(
    tmp_path_factory: pytest.TempPathFactory, line: int, pos: int, byte: int
) -> None:
    tmp = tmp_path_factory.mktemp("cp")
    key = SigningKey.generate()
    path = chain(tmp, key)
    raw = checkpoints_path(path).read_bytes().split(b"\n")
    target = bytearray(raw[line])
    i = pos % len(target)
    target[i] = (target[i] + byte) % 256
    if bytes(target) == raw[line] or b"\n" in target:
        return
    raw[line] = bytes(target)
    checkpoints_path(path).write_bytes(b"\n".join(raw))
    ok, seq, _problem = verify(path, public_b64(key))
    assert not ok and seq is not None and seq <= 31, (seq, _problem)


def test_checkpoint_file_append_is_whole_lines(tmp_path: Path) -> None:
    f = CheckpointFile(tmp_path / "x.checkpoints.jsonl")
    assert f.read() == ([], False)
    f.append({"a": 1})
    f.append({"b": 2})
    assert f.read() == ([{"a": 1}, {"b": 2}], False)
