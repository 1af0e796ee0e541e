"""The verify path's short cuts (issue 19) answer exactly as the general code does.

The nonce memory only ever refuses a nonce really used, and a replay it does not know
(committed by another connection) is still refused, by the durable insert; the decision
plan, the direct constructors and the cheaper helpers give the same values as before.
"""

from __future__ import annotations

import posixpath
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.trust import envelope as E
from meshagents.trust import manifest as M
from meshagents.trust.audit import AuditLog
from meshagents.trust.canonical import b64decode, b64encode
from meshagents.trust.constraints import normpath
from meshagents.trust.models import Manifest
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import strip_signature
from tests.testbed.trust_keys import Keys

pytestmark = pytest.mark.unit

NOW = 1_800_000_000


@pytest.fixture
def manifest(make_manifest: Callable[..., Manifest]) -> Manifest:
    return make_manifest(Path("/tmp"), issued_at=NOW - 100, expires_at=NOW + 86400)


def envelope(keys: Keys) -> E.Envelope:
    return E.sign(keys.controller, device_id="dev-0001", capability="shell.exec.ls",
                  args={"argv": ["ls", "/tmp"]}, now=NOW)  # fmt: skip


def test_known_holds_what_was_stored_and_committed(tmp_path: Path) -> None:
    first = NonceStore(tmp_path / "n.sqlite")
    first.consume("a" * 20, NOW + 10)
    again = NonceStore(tmp_path / "n.sqlite")  # a restart: loaded from the table
    assert again.known("a" * 20) and not again.known("b" * 20)
    again.consume("b" * 20, NOW + 10)
    assert again.known("b" * 20)
    assert again.prune(NOW + 11) == 2 and not again.known("a" * 20) and not again.known("b" * 20)


def test_a_rolled_back_nonce_is_not_known(tmp_path: Path) -> None:
    """append_intent refused for a spent approval rolls the nonce back: it stays unused."""
    with AuditLog(tmp_path / "a.sqlite", device_id="dev-0001") as log:
        assert not log.nonces.known("n" * 20)  # loads the (empty) table
        log.append_intent("r1", "system.reboot", {}, approval="$ev", nonce="m" * 20, keep_until=NOW + 10)
        assert log.nonces.known("m" * 20)
        with pytest.raises(FnError) as exc:
            log.append_intent("r2", "system.reboot", {}, approval="$ev", nonce="n" * 20, keep_until=NOW + 10)
        assert exc.value.code == "rejected_approval"
        assert not log.nonces.known("n" * 20) and not log.nonces.seen("n" * 20)


def test_a_replay_the_memory_misses_is_refused_by_the_insert(
    keys: Keys, manifest: Manifest, tmp_path: Path
) -> None:
    """Another connection (a second process) consumes the nonce after this store loaded."""
    e = envelope(keys)
    ours = NonceStore(tmp_path / "n.sqlite")
    assert not ours.known("x" * 20)  # loaded now, before the other connection writes
    NonceStore(tmp_path / "n.sqlite").consume(e.nonce, NOW + 400)
    assert not ours.known(e.nonce)  # not in memory: verify goes on ...
    res = E.verify(e, manifest, ours, now=NOW, consume=True)
    assert res.status == "rejected_nonce"  # ... and the durable insert refuses the replay
    assert ours.known(e.nonce)  # now known: the next replay stops at step 4
    assert E.verify(e, manifest, ours, now=NOW).reason == "nonce already used (replay)"


def test_the_agent_path_refuses_a_replay_the_memory_misses(
    keys: Keys, manifest: Manifest, tmp_path: Path
) -> None:
    e = envelope(keys)
    with AuditLog(tmp_path / "a.sqlite", device_id="dev-0001") as log:
        assert E.verify(e, manifest, log.nonces, now=NOW).ok
        other = sqlite3.connect(tmp_path / "a.sqlite")
        other.execute("INSERT INTO nonces(nonce, keep_until) VALUES(?, ?)", (e.nonce, NOW + 400))
        other.commit()
        other.close()
        assert E.verify(e, manifest, log.nonces, now=NOW).ok  # the memory cannot know ...
        with pytest.raises(FnError) as exc:  # ... the intent's transaction does
            log.append_intent(e.request_id, e.capability, e.args, nonce=e.nonce, keep_until=NOW + 400)
        assert exc.value.code == "rejected_nonce"
        assert log.nonces.known(e.nonce)


def test_the_direct_constructors_equal_the_dataclasses(
    keys: Keys, manifest: Manifest, tmp_path: Path
) -> None:
    e = envelope(keys)
    res = E.verify(e, manifest, NonceStore(tmp_path / "n.sqlite"), now=NOW)
    d = res.decision
    assert d is not None and d.capability is not None
    built = M.Decision(
        True, "ok", "allowed", capability=d.capability, argv=d.argv, path=d.path,
        requires_approval=d.capability.requires_approval, timeout_s=d.capability.timeout_s,
        output_cap_bytes=d.capability.output_cap_bytes, extra=d.extra, cwd=d.cwd,
    )  # fmt: skip
    assert d == built and repr(d) == repr(built)
    assert res == E.VerifyResult("ok", "accepted", res.envelope, d)
    with pytest.raises(AttributeError):  # still frozen
        d.allowed = False  # type: ignore[misc]


def test_the_plan_follows_the_manifest_object(keys: Keys, make_manifest: Callable[..., Manifest]) -> None:
    a = make_manifest(Path("/tmp"), issued_at=NOW - 100, expires_at=NOW + 86400)
    body = a.model_dump(mode="json")
    body["capabilities"] = [c for c in body["capabilities"] if c["name"] != "shell.exec.ls"]
    b = Manifest.model_validate(body)
    args = {"argv": ["ls", "/tmp"]}
    assert M.decide(a, "shell.exec.ls", args, now=NOW).allowed
    assert M.decide(b, "shell.exec.ls", args, now=NOW).code == "rejected_capability"
    assert M.decide(a, ["not", "a", "name"], args, now=NOW).code == "rejected_capability"  # type: ignore[arg-type]


@given(st.text(alphabet="/.ab", max_size=12))
def test_normpath_is_posixpaths(path: str) -> None:
    assert normpath(path) == posixpath.normpath(path)
    assert normpath("/" + path) == posixpath.normpath("/" + path)


@given(st.binary(min_size=0, max_size=70))
def test_b64decode_round_trips_and_refuses_other_texts(raw: bytes) -> None:
    text = b64encode(raw)
    assert b64decode(text) == raw
    for bad in (text + "=", text.rstrip("=") if "=" in text else text + "A", " " + text):
        if bad != text:
            with pytest.raises(FnError):
                b64decode(bad, size=len(raw))


def test_b64decode_refuses_unused_bits() -> None:
    with pytest.raises(FnError, match="not canonical"):
        b64decode("AB==")  # decodes like "AA==": the low bits are not zero


def test_strip_signature_keeps_order_and_removes_both_fields() -> None:
    body = {"b": 1, "signature": "s", "a": 2, "signatures": {}}
    assert list(strip_signature(body)) == ["b", "a"] and "signature" in body
