"""Enrollment tokens: one use, expiry, any change refused, compact text and QR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust import tokens as T
from meshagents.trust.canonical import b64url_decode, b64url_encode
from meshagents.trust.signing import public_b64
from tests.testbed.trust_keys import Keys

pytestmark = pytest.mark.unit
NOW = 1_800_000_000


def code_of(compact: str, keys: Keys, store: T.TokenStore | None = None, now: int = NOW) -> str:
    try:
        T.verify(compact, keys.op_pub, store, now=now)
    except FnError as exc:
        return exc.code
    return "ok"


def test_one_use_persistent(keys: Keys, tmp_path: Path) -> None:
    tok, compact = T.create(keys.operator, device_name="home-wsl", hub_endpoint="hub:51820", now=NOW)
    assert tok.expires_at == NOW + 600
    store = T.TokenStore(tmp_path / "t.sqlite")
    assert code_of(compact, keys, store) == "ok"
    assert code_of(compact, keys, store) == "token_used"
    store.close()
    assert code_of(compact, keys, T.TokenStore(tmp_path / "t.sqlite")) == "token_used"


def test_expired_invalid(keys: Keys) -> None:
    _, compact = T.create(keys.operator, device_name="home-wsl", ttl_s=10, now=NOW)
    assert code_of(compact, keys, now=NOW + 9) == "ok"
    assert code_of(compact, keys, now=NOW + 10) == "token_expired"
    _, other = T.create(SigningKey.generate(), device_name="home-wsl", now=NOW)
    assert code_of(other, keys) == "token_invalid"
    for junk in (
        "",
        "mat1",
        "mat1..",
        "mat2.a.b",
        compact + ".x",
        compact.replace("mat1", "MAT1"),
        "x" * 5000,
    ):
        assert code_of(junk, keys) == "token_invalid", junk


def test_expired_beats_used(keys: Keys, tmp_path: Path) -> None:
    _, compact = T.create(keys.operator, device_name="home-wsl", ttl_s=10, now=NOW)
    store = T.TokenStore(tmp_path / "t.sqlite")
    assert code_of(compact, keys, store) == "ok"
    assert code_of(compact, keys, store, now=NOW + 11) == "token_expired"


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(st.data())
def test_any_single_byte_change_is_refused(keys: Keys, data: st.DataObject) -> None:
    _, compact = T.create(keys.operator, device_name="home-wsl", hub_endpoint="203.0.113.5:51820", now=NOW)
    raw = bytearray(compact.encode())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    tampered = raw.decode("utf-8", errors="replace")
    assert code_of(tampered, keys) == "token_invalid"


def test_reordered_or_reencoded_payload_refused(keys: Keys) -> None:
    _, compact = T.create(keys.operator, device_name="home-wsl", now=NOW)
    prefix, payload, sig = compact.split(".")
    obj = json.loads(b64url_decode(payload))
    for text in (
        json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")),
        json.dumps(obj, sort_keys=True),
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).replace(
            "home", "\\u0068ome"
        ),
        # Dropping a field the model has a default for is a change too.
        json.dumps({k: v for k, v in obj.items() if k != "type"}, sort_keys=True, separators=(",", ":")),
    ):
        assert code_of(f"{prefix}.{b64url_encode(text.encode())}.{sig}", keys) == "token_invalid"


def test_a_manifest_signature_is_not_a_token(keys: Keys) -> None:
    from meshagents.trust import manifest as M
    from tests.testbed.trust_keys import manifest_body

    signed = M.sign(manifest_body(keys), keys.operator)
    _, compact = T.create(keys.operator, device_name="home-wsl", now=NOW)
    prefix, payload, _sig = compact.split(".")
    assert signed.signature is not None
    from meshagents.trust.canonical import b64decode

    forged = f"{prefix}.{payload}.{b64url_encode(b64decode(signed.signature))}"
    assert code_of(forged, keys) == "token_invalid"


def test_qr(keys: Keys, tmp_path: Path) -> None:
    _, compact = T.create(keys.operator, device_name="home-wsl", now=NOW)
    png = T.qr_png(compact, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = T.qr_terminal(compact)
    assert text.count("\n") > 20
    assert public_b64(keys.operator) in json.loads(b64url_decode(compact.split(".")[1]))["operator_key"]


def test_the_bundle_hash_is_signed_and_an_older_token_without_it_still_verifies(keys: Keys) -> None:
    from meshagents.trust.canonical import canonical_bytes
    from meshagents.trust.signing import TYPE_TOKEN, sign_payload

    want = "ab" * 32
    token, compact = T.create(keys.operator, device_name="home-wsl", now=NOW, bundle_sha256=want)
    assert token.bundle_sha256 == want and T.verify(compact, keys.op_pub, None, now=NOW).bundle_sha256 == want
    # the installer (POSIX sh) reads it as one "key":"value" pair of the canonical payload
    assert f'"bundle_sha256":"{want}"' in b64url_decode(compact.split(".")[1]).decode()
    prefix, payload, sig = compact.split(".")
    obj = json.loads(b64url_decode(payload))
    obj["bundle_sha256"] = "cd" * 32  # another bundle under the same signature
    forged = canonical_bytes(obj)
    assert code_of(f"{prefix}.{b64url_encode(forged)}.{sig}", keys) == "token_invalid"
    # a token made before the field existed: signed without it, still accepted
    old = {k: v for k, v in json.loads(b64url_decode(payload)).items() if k != "bundle_sha256"}
    old_sig = sign_payload(old, keys.operator, TYPE_TOKEN)
    raw_sig = b64url_encode(T.b64decode(old_sig, size=64))
    old_compact = f"{prefix}.{b64url_encode(canonical_bytes(old))}.{raw_sig}"
    assert T.verify(old_compact, keys.op_pub, None, now=NOW).bundle_sha256 is None


def test_a_bundle_hash_that_is_not_hex64_is_refused(keys: Keys) -> None:
    with pytest.raises(FnError) as exc:
        T.create(keys.operator, device_name="home-wsl", now=NOW, bundle_sha256="../x")
    assert exc.value.code == "token_invalid"
