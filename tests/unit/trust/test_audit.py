"""Audit chain: intents and outcomes, atomic nonce, tampering caught at the right seq."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.audit import COLUMNS, GENESIS, AuditLog, entry_hash, verify_chain
from meshagents.trust.signing import public_b64
from tests.testbed.trust_keys import Keys

pytestmark = pytest.mark.unit


def build(path: Path, n_requests: int = 5) -> AuditLog:
    log = AuditLog(path, device_id="dev-0001")
    for i in range(n_requests):
        log.append_intent(f"r{i}", "shell.exec.ls", {"argv": ["ls", f"/tmp/{i}"]}, nonce=f"nonce-{i:012d}")
        log.append_outcome(f"r{i}", "shell.exec.ls", "ok", detail=f"{i} lines")
    return log


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def test_append_verify_pending(tmp_path: Path, keys: Keys) -> None:
    log = build(tmp_path / "a.sqlite", 3)
    log.append_intent("r9", "system.reboot", {"argv": ["reboot"]}, approval="$ev")
    report = log.verify()
    assert report.ok and report.head_seq == 7 and report.entries == 7
    assert [e.request_id for e in log.pending()] == ["r9"]
    entries = log.entries()
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    cp = log.checkpoint(keys.device)
    assert cp.seq == 7 and log.verify(keys.dev_pub).ok


def test_nonce_and_intent_in_one_transaction(tmp_path: Path) -> None:
    log = build(tmp_path / "a.sqlite", 1)
    with pytest.raises(FnError) as err:
        log.append_intent("r-replay", "shell.exec.ls", {"argv": ["ls"]}, nonce="nonce-000000000000")
    assert err.value.code == "rejected_nonce"
    assert log.head()[0] == 2 and all(e.request_id != "r-replay" for e in log.entries())
    assert log.nonces.seen("nonce-000000000000")


@pytest.mark.parametrize(
    ("sql", "seq", "problem"),
    [
        ("UPDATE entries SET status='error' WHERE seq=4", 4, "hash_mismatch"),
        ("UPDATE entries SET detail='x' WHERE seq=1", 1, "hash_mismatch"),
        ("UPDATE entries SET ts_ms=ts_ms+1 WHERE seq=10", 10, "hash_mismatch"),
        (
            "UPDATE entries SET prev_hash=(SELECT hash FROM entries WHERE seq=2) WHERE seq=5",
            5,
            "hash_mismatch",
        ),
        ("DELETE FROM entries WHERE seq=6", 6, "gap"),
        ("DELETE FROM entries WHERE seq=1", 1, "gap"),
        ("UPDATE entries SET seq=CASE seq WHEN 3 THEN 7 WHEN 7 THEN 3 END WHERE seq IN (3,7)", 3, "reorder"),
        ("UPDATE entries SET seq=-seq WHERE seq=8", 8, "gap"),
    ],
)
def test_tampering_caught_at_the_right_seq(tmp_path: Path, sql: str, seq: int, problem: str) -> None:
    path = tmp_path / "a.sqlite"
    build(path).close()
    raw(path).execute(sql)
    report = AuditLog(path).verify()
    assert not report.ok
    assert (report.first_bad_seq, report.problem) == (seq, problem), report


def test_swap_two_rows_contents(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    build(path).close()
    db = raw(path)
    cols = [c.strip() for c in COLUMNS.split(",")][1:]
    a = db.execute(f"SELECT {', '.join(cols)} FROM entries WHERE seq=4").fetchone()
    b = db.execute(f"SELECT {', '.join(cols)} FROM entries WHERE seq=5").fetchone()
    sets = ", ".join(f"{c}=?" for c in cols)
    db.execute(f"UPDATE entries SET {sets} WHERE seq=4", b)
    db.execute(f"UPDATE entries SET {sets} WHERE seq=5", a)
    report = AuditLog(path).verify()
    assert (report.first_bad_seq, report.problem) == (4, "hash_mismatch")


def test_drop_the_tail_after_a_checkpoint(tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "a.sqlite"
    log = build(path)
    log.checkpoint(keys.device)
    log.append_event("agent", "restart")
    log.close()
    raw(path).execute("DELETE FROM entries WHERE seq >= 8")
    report = AuditLog(path).verify(keys.dev_pub)
    assert (report.first_bad_seq, report.problem) == (8, "truncated")


def test_full_rewrite_is_caught_by_the_checkpoint(tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "a.sqlite"
    log = build(path)
    log.checkpoint(keys.device)
    rows = [list(r) for r in log.rows()]
    rows[2][6] = "forged"
    # Recompute every hash after the edit, as a thorough attacker would.
    from meshagents.trust.audit import GENESIS, entry_hash

    prev = GENESIS
    for r in rows:
        r[9] = prev
        r[10] = entry_hash(*r[:9], prev)  # type: ignore[call-arg]
        prev = r[10]
    report = verify_chain(rows, log.checkpoints(), keys.dev_pub)
    assert (report.first_bad_seq, report.problem) == (10, "hash_mismatch")


def test_bad_checkpoint_signature(tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "a.sqlite"
    log = build(path)
    log.checkpoint(SigningKey.generate())
    assert log.verify(keys.dev_pub).problem == "bad_checkpoint_signature"
    log.close()
    path2 = tmp_path / "b.sqlite"
    log = build(path2)
    log.checkpoint(keys.device)
    log.close()
    raw(path2).execute("UPDATE checkpoints SET body=replace(body, '\"seq\":10', '\"seq\":9')")
    report = AuditLog(path2).verify(keys.dev_pub)
    assert (report.first_bad_seq, report.problem) == (9, "bad_checkpoint_signature")
    raw(path2).execute("UPDATE checkpoints SET body='garbage'")
    report = AuditLog(path2).verify(keys.dev_pub)
    assert report.problem == "bad_checkpoint_signature"
    assert public_b64(keys.device) == keys.dev_pub


@pytest.fixture(scope="module")
def clean_rows(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[object, ...]]:
    log = build(tmp_path_factory.mktemp("audit") / "a.sqlite")
    rows = log.rows()
    log.close()
    return rows


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.integers(1, 10), column=st.integers(1, 10), suffix=st.text(min_size=1, max_size=3))
def test_any_edit_of_any_row_caught_there(
    clean_rows: list[tuple[object, ...]], seq: int, column: int, suffix: str
) -> None:
    """Pure core: change any one field of any one row; the report names that row."""
    rows = [list(r) for r in clean_rows]
    value = rows[seq - 1][column]
    rows[seq - 1][column] = value + 1 if isinstance(value, int) else (value or "") + suffix
    report = verify_chain(rows, [])
    assert (report.first_bad_seq, report.problem) == (seq, "hash_mismatch")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    texts=st.lists(
        st.tuples(
            st.text(max_size=12), st.text(max_size=12), st.none() | st.text(max_size=8), st.text(max_size=30)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_sql_hash_text_matches_python(tmp_path_factory: pytest.TempPathFactory, texts: list) -> None:
    """AuditLog.verify streams the rows and builds the hashed text inline; it must equal
    entry_text for any content stored through the API."""
    path = tmp_path_factory.mktemp("sql") / "a.sqlite"
    with AuditLog(path) as log:
        for rid, status, approval, detail in texts:
            try:
                log.append("event", rid, "cap", "", status, approval=approval, detail=detail)
            except UnicodeEncodeError:
                continue  # lone surrogates cannot be stored at all
        assert log.verify().ok
        assert verify_chain(log.rows(), []).ok


_INSERT = (
    "INSERT INTO entries(seq, kind, ts_ms, request_id, capability, args_digest, status, approval, detail,"
    " prev_hash, hash) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
)
#: Text with NUL and other control characters in it, as a row written behind the API may hold.
_NUL_TEXT = st.text(alphabet=st.sampled_from("a\x00\x01é:;~9"), max_size=8)


def _store_rows(path: Path, fields: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Rows linked and hashed with entry_hash (the spec), inserted as they are."""
    rows, prev = [], GENESIS
    for i, (rid, cap, status, approval, detail) in enumerate(fields, start=1):
        f = (i, "event", 1_800_000_000_000 + i, rid, cap, "", status, approval, detail)
        h = entry_hash(*f, prev)  # type: ignore[arg-type]
        rows.append((*f, prev, h))
        prev = h
    with AuditLog(path) as log:
        log.conn.executemany(_INSERT, rows)
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.lists(
        st.tuples(_NUL_TEXT, _NUL_TEXT, _NUL_TEXT, st.none() | _NUL_TEXT, _NUL_TEXT), min_size=1, max_size=5
    ),
    edit=st.none()
    | st.tuples(st.integers(0, 4), st.sampled_from(["request_id", "detail", "approval"]), _NUL_TEXT),
)
def test_store_verify_agrees_with_entry_text_on_nul(
    tmp_path_factory: pytest.TempPathFactory,
    fields: list[tuple[object, ...]],
    edit: tuple[int, str, str] | None,
) -> None:
    """NUL in any field (rows written behind the API): reading from SQLite judges a row
    exactly as the pure verifier over entry_text does, intact or edited after the fact."""
    path = tmp_path_factory.mktemp("nul") / "a.sqlite"
    rows = _store_rows(path, fields)
    with AuditLog(path) as log:
        if edit is not None:
            seq = edit[0] % len(rows) + 1
            log.conn.execute(f"UPDATE entries SET {edit[1]} = ? WHERE seq = ?", (edit[2], seq))
        stored = log.verify()
        pure = verify_chain(log.rows(), [])
    assert (stored.ok, stored.first_bad_seq, stored.problem, stored.head_seq) == (
        pure.ok, pure.first_bad_seq, pure.problem, pure.head_seq
    )  # fmt: skip
    if edit is None:
        assert stored.ok and stored.entries == len(rows)


def test_store_verify_refuses_a_hash_over_nul_truncated_text(tmp_path: Path) -> None:
    """A hash made the way a C-string reader sees the row (text cut at the NUL) is wrong
    for entry_text, so the chain is broken there, from SQLite as in the pure core."""
    path = tmp_path / "a.sqlite"
    f = (1, "event", 1_800_000_000_001, "r", "cap", "", "ok", None, "de\x00tail")
    cut = (1, "event", 1_800_000_000_001, "r", "cap", "", "ok", None, "de")
    with AuditLog(path) as log:
        log.conn.execute(_INSERT, (*f, GENESIS, entry_hash(*cut, GENESIS)))
        report = log.verify()
        assert (report.ok, report.first_bad_seq, report.problem) == (False, 1, "hash_mismatch")
        assert not verify_chain(log.rows(), []).ok


def test_store_verify_judges_a_blob_column_like_the_pure_core(tmp_path: Path) -> None:
    """A TEXT column holding a BLOB (SQLite does not enforce types): same answer both ways."""
    path = tmp_path / "a.sqlite"
    _store_rows(path, [("r1", "cap", "ok", None, "x"), ("r2", "cap", "ok", None, "y")])
    with AuditLog(path) as log:
        log.conn.execute("UPDATE entries SET detail = CAST('y' AS BLOB) WHERE seq = 2")
        stored, pure = log.verify(), verify_chain(log.rows(), [])
    assert (stored.ok, stored.first_bad_seq, stored.problem) == (pure.ok, pure.first_bad_seq, pure.problem)
    assert not stored.ok and stored.first_bad_seq == 2


def test_hub_checks_shipped_batches_for_continuity(tmp_path: Path, keys: Keys) -> None:
    log = build(tmp_path / "a.sqlite")  # 10 entries
    log.checkpoint(keys.device)
    rows, cps = log.rows(), log.checkpoints()
    first = verify_chain(rows[:4], [], keys.dev_pub)
    assert first.ok and first.head_seq == 4
    rest = verify_chain(rows[4:], cps, keys.dev_pub, after=(first.head_seq, first.head_hash))
    assert rest.ok and rest.head_seq == 10 and rest.checkpoints == 1
    skipped = verify_chain(rows[5:], [], after=(first.head_seq, first.head_hash))
    assert (skipped.first_bad_seq, skipped.problem) == (5, "gap")
    forked = verify_chain(rows[4:], [], after=(4, "f" * 64))
    assert (forked.first_bad_seq, forked.problem) == (5, "hash_mismatch")


def test_nonces_written_by_intents_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshagents.trust import noncestore

    monkeypatch.setattr(noncestore, "PRUNE_EVERY", 3)
    with AuditLog(tmp_path / "a.sqlite") as log:
        for i in range(3):
            log.append_intent(f"r{i}", "c", {}, nonce=f"old-nonce-{i:08d}", keep_until=10, ts_ms=1_000_000)
        assert log.nonces.count() == 0  # all three past keep_until at ts 1000 s
        log.append_intent("r9", "c", {}, nonce="live-nonce-000000", keep_until=5000, ts_ms=1_000_000)
        assert log.nonces.seen("live-nonce-000000")
