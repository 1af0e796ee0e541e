"""Secret storage, recovery keys, passphrases: byte for byte what matrix-js-sdk 36.2.0 makes.

The vectors below were produced by the SDK itself (tests/element/node_modules, run under
Node 20: ``encodeRecoveryKey``, ``encryptAESSecretStorageItem``, ``calculateKeyCheck``,
``deriveRecoveryKeyFromPassphrase``) with key = bytes 0..31 and IV = bytes 0xa0..0xaf.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.matrix import crosssign
from meshagents.matrix import secretstore as ss

KEY = bytes(range(32))
IV = bytes(range(0xA0, 0xB0))
JS_RECOVERY_KEY = "EsSz ykH7 LCZx 7Cae cmKD wcmY JRXi Ybtu 8iQ3 t8Ez nRwK pUY1"
JS_SECRET = {
    "iv": "oKGio6SlpqeoqaqrrK2urw==",
    "ciphertext": "jEioih/ydPK4L7wWTZ7RCn3x3wZ2rA==",
    "mac": "i0ec4V5KYvniMqu9Jly0dZVQoode6Rm/9IIc91FjrQ0=",
}
JS_CHECK_MAC = "fVcQF3njj/87mlWLfawLqfy9m0sJfPk0IR7bdVs46NA="
JS_PBKDF2 = "fac5120fc8f0e1ff27b3b9bd6fb923f0f7892def252573bc026d3d04b80eefd9"


def test_recovery_key_matches_js_sdk() -> None:
    assert ss.encode_recovery_key(KEY) == JS_RECOVERY_KEY
    assert ss.decode_recovery_key(JS_RECOVERY_KEY) == KEY
    assert ss.decode_recovery_key(JS_RECOVERY_KEY.replace(" ", "")) == KEY


def test_secret_encryption_matches_js_sdk() -> None:
    assert ss.encrypt("ed25519 seed in base64", KEY, ss.MASTER, IV) == JS_SECRET
    assert ss.decrypt(JS_SECRET, KEY, ss.MASTER) == "ed25519 seed in base64"


def test_key_check_matches_js_sdk() -> None:
    assert ss.key_check(KEY, IV) == {"iv": JS_SECRET["iv"], "mac": JS_CHECK_MAC}
    desc = {"algorithm": ss.AES_HMAC_SHA2, "iv": JS_SECRET["iv"], "mac": JS_CHECK_MAC.rstrip("=")}
    assert ss.key_matches(KEY, desc)
    assert not ss.key_matches(bytes(32), desc)


def test_passphrase_matches_js_sdk() -> None:
    assert ss.passphrase_key("correct horse", "saltsalt", 1000).hex() == JS_PBKDF2


@given(st.binary(min_size=32, max_size=32))
def test_recovery_key_round_trip(key: bytes) -> None:
    assert ss.decode_recovery_key(ss.encode_recovery_key(key)) == key


_RK_LEN = len(JS_RECOVERY_KEY.replace(" ", ""))


@given(st.integers(min_value=0, max_value=_RK_LEN - 1), st.sampled_from("ABCxyz123"))
def test_recovery_key_typo_refused(pos: int, char: str) -> None:
    text = JS_RECOVERY_KEY.replace(" ", "")
    typo = text[:pos] + char + text[pos + 1 :]
    if typo == text:
        return
    try:
        key = ss.decode_recovery_key(typo)
    except FnError as exc:
        assert exc.code == "bad_recovery_key"
    else:  # a substitution the parity byte cannot see still gives another key
        assert key != KEY


def test_bad_recovery_keys() -> None:
    for text in ("0OIl", "", ss.base58_encode(b"\x8b\x02" + KEY + b"\x00")):
        with pytest.raises(FnError) as exc:
            ss.decode_recovery_key(text)
        assert exc.value.code == "bad_recovery_key"


@given(st.text(max_size=200), st.integers(min_value=0, max_value=300))
def test_tampered_ciphertext_refused(secret: str, flip: int) -> None:
    item = ss.encrypt(secret, KEY, ss.SELF_SIGNING)
    raw = bytearray(ss.b64_decode(item["ciphertext"]) or b"\0")
    raw[flip % len(raw)] ^= 1
    bad = {**item, "ciphertext": ss.b64(bytes(raw))}
    with pytest.raises(FnError) as exc:
        ss.decrypt(bad, KEY, ss.SELF_SIGNING)
    assert exc.value.code == "secret_storage_bad_mac"
    # the name is bound in: another secret's name does not decrypt it
    with pytest.raises(FnError):
        ss.decrypt(item, KEY, ss.USER_SIGNING)


def test_generated_key_describes_itself() -> None:
    key = ss.StorageKey.generate()
    assert len(key.key_id) == 32 and ss.key_matches(key.key, key.description)
    assert ss.decode_recovery_key(key.recovery_key) == key.key
    content = ss.secret_content("s3cret", key, ss.BACKUP_SECRET)
    assert ss.read_secret(content, key.key_id, key.key, ss.BACKUP_SECRET) == "s3cret"
    other = ss.StorageKey.generate()
    with pytest.raises(FnError) as exc:
        ss.read_secret(content, other.key_id, other.key, ss.BACKUP_SECRET)
    assert exc.value.code == "secret_not_stored"


def test_passphrase_key_description() -> None:
    key = ss.StorageKey.generate(passphrase="hunter2 hunter2", iterations=1000)
    pp = key.description["passphrase"]
    assert pp["algorithm"] == "m.pbkdf2" and pp["bits"] == 256
    assert ss.passphrase_key("hunter2 hunter2", pp["salt"], pp["iterations"]) == key.key


def test_backup_auth_data_signed_by_master() -> None:
    seeds = crosssign.CrossSigningSeeds.generate()
    body = ss.backup_version_body("@op:hs", bytes(range(32)), seeds)
    assert body["algorithm"] == ss.BACKUP_ALGORITHM
    assert crosssign.verify_json(body["auth_data"], "@op:hs", seeds.master_public, seeds.master_public)
    assert body["auth_data"]["public_key"] == ss.backup_public_key(bytes(range(32)))


# Made here with ephemeral key 0x07 * 32 and backup key bytes 0..31; decrypted to the same
# JSON by matrix-sdk-crypto-wasm 13.0.0 (``BackupDecryptionKey.decryptV1``, the code Element runs).
WASM_CHECKED = {
    "ephemeral": "E75P6uryBMf9M1j8nAByGIHRdCeBKCJ+xnTzf3/pe20",
    "ciphertext": "1tZ2D6h6dKkKHz+ylGgzgcQ3CdqmAmMT4J9Pfxcjup5wD8N84gcw7dTNqwks2QQMSUVKqBPH4HXZyLqOnT1q+A",
    "mac": "Ck4VU2S9JD0",
}


def test_backup_session_data_as_the_rust_sdk_reads_it() -> None:
    session = {"algorithm": "m.megolm.v1.aes-sha2", "session_key": "abc"}
    public = ss.backup_public_key(KEY)
    assert public == "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8"
    assert ss.encrypt_backup_session(public, session, ephemeral=bytes([7]) * 32) == WASM_CHECKED
    assert ss.decrypt_backup_session(KEY, WASM_CHECKED) == session
    with pytest.raises(FnError):
        ss.decrypt_backup_session(KEY, {**WASM_CHECKED, "mac": "AAAAAAAAAAA"})


def test_hkdf_matches_rfc_5869() -> None:
    """Test case 1 of RFC 5869 (SHA-256): the HKDF that replaced cryptography's."""
    okm = ss.hkdf_sha256(bytes([0x0B]) * 22, 42, bytes(range(0xF0, 0xFA)), salt=bytes(range(13)))
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_ctr_counter_carries_over_the_whole_block() -> None:
    """The IV is one 128-bit counter: from ...ff ff the next block is ...01 00 00 (the low
    half wraps into the high half), which a 64-bit nonce + counter split would not do."""
    from Crypto.Cipher import AES

    iv = bytes(8) + b"\xff" * 8
    key = bytes(range(32))
    stream = ss._ctr(key, iv).encrypt(bytes(32))
    ecb = AES.new(key, AES.MODE_ECB)
    assert stream[:16] == ecb.encrypt(iv)
    assert stream[16:] == ecb.encrypt(bytes(7) + b"\x01" + bytes(8))
