"""Matrix secret storage, recovery keys and the key-backup key: pure crypto, no I/O.

What Element's "Verify with Recovery Key" reads (spec, client-server API, "Secret
Storage" and "Server-side key backups"; byte for byte as matrix-js-sdk 36 does it):

- A **secret-storage key** is 32 random bytes. Its description lives in account data
  ``m.secret_storage.key.<key id>``: ``{"algorithm": "m.secret_storage.v1.aes-hmac-sha2",
  "iv", "mac"[, "passphrase"]}`` where ``iv``/``mac`` are the encryption of 32 zero bytes
  under the key with the empty name (a check that a typed key is the right one). The
  default key's id is in ``m.secret_storage.default_key`` as ``{"key": id}``.
- A **secret** (e.g. ``m.cross_signing.master``) is account data
  ``{"encrypted": {<key id>: {"iv", "ciphertext", "mac"}}}``: HKDF-SHA256 of the key
  (salt: zero bytes, info: the secret's name, 64 bytes out) gives an AES-256 key and an
  HMAC-SHA256 key; the UTF-8 secret is encrypted with AES-256-CTR (16-byte IV, bit 63
  cleared so Android's 64-bit counter never wraps), the MAC is over the ciphertext.
  Standard base64 with padding, as the js-sdk writes it (readers accept both).
- The **recovery key** the operator writes down is that key in the spec's "cryptographic
  key representation": ``0x8B 0x01`` + key + an XOR parity byte, base58 (Bitcoin
  alphabet), in groups of four. A **passphrase** may stand for it: PBKDF2-HMAC-SHA512
  over the passphrase with the description's salt and iterations, 256 bits.
- **Key backup** ``m.megolm_backup.v1.curve25519-aes-sha2``: a curve25519 key pair; the
  public half in the backup version's ``auth_data`` (signed by the master key, so
  Element trusts it), the private half (unpadded base64) stored as the secret
  ``m.megolm_backup.v1``.
- Cross-signing secrets are the ed25519 seeds, unpadded base64, under
  ``m.cross_signing.master`` / ``.self_signing`` / ``.user_signing``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import string
from dataclasses import dataclass
from typing import Any

# AES from pycryptodome, which matrix-nio needs anyway (its attachment cipher): a device
# then carries one AES library, not pycryptodome beside cryptography (15 MB, 7 MB RSS).
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad, unpad
from nacl.bindings import crypto_scalarmult
from nacl.public import PrivateKey

from meshagents.errors import FnError
from meshagents.matrix import crosssign

AES_HMAC_SHA2 = "m.secret_storage.v1.aes-hmac-sha2"
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
DEFAULT_KEY_EVENT = "m.secret_storage.default_key"
KEY_EVENT_PREFIX = "m.secret_storage.key."
MASTER = "m.cross_signing.master"
SELF_SIGNING = "m.cross_signing.self_signing"
USER_SIGNING = "m.cross_signing.user_signing"
BACKUP_SECRET = "m.megolm_backup.v1"  # noqa: S105 (a secret's name, not a secret)
CROSS_SIGNING_SECRETS = (MASTER, SELF_SIGNING, USER_SIGNING)

_PREFIX = b"\x8b\x01"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
#: Element's default for a passphrase-derived key.
PBKDF2_ITERATIONS = 500_000


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def b64_decode(text: str) -> bytes:
    """Standard base64, padded or not (the spec writes unpadded, the js-sdk padded)."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as exc:
        raise FnError("secret_storage_corrupt", "a secret-storage field is not base64") from exc


# --------------------------------------------------------------------- base58 and the recovery key
def base58_encode(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * zeros + out


def base58_decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise FnError("bad_recovery_key", "the recovery key has a character that is not base58")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + body


def encode_recovery_key(key: bytes) -> str:
    """The text the operator writes down (``EsT...``, groups of four)."""
    if len(key) != 32:
        raise ValueError("a secret-storage key is 32 bytes")
    buf = _PREFIX + key
    parity = 0
    for b in buf:
        parity ^= b
    text = base58_encode(buf + bytes([parity]))
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def decode_recovery_key(text: str) -> bytes:
    """The 32-byte key from a recovery key; spaces anywhere are ignored.
    Errors (``bad_recovery_key``): not base58, wrong parity, prefix or length."""
    raw = base58_decode("".join(c for c in text if c not in string.whitespace))
    parity = 0
    for b in raw:
        parity ^= b
    if parity != 0:
        raise FnError("bad_recovery_key", "the recovery key's parity check fails (a typo?)")
    if raw[:2] != _PREFIX:
        raise FnError("bad_recovery_key", "not a Matrix recovery key (wrong prefix)")
    if len(raw) != len(_PREFIX) + 32 + 1:
        raise FnError("bad_recovery_key", "the recovery key has the wrong length")
    return raw[2:34]


def passphrase_key(passphrase: str, salt: str, iterations: int, bits: int = 256) -> bytes:
    """PBKDF2-HMAC-SHA512, as the spec's ``m.pbkdf2``."""
    return hashlib.pbkdf2_hmac("sha512", passphrase.encode(), salt.encode(), iterations, bits // 8)


def hkdf_sha256(key: bytes, length: int, info: bytes, salt: bytes = b"\0" * 32) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with ``salt``, expand to ``length`` bytes."""
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _ctr(key: bytes, iv: bytes) -> Any:
    """AES-256-CTR whose 16-byte IV is the whole initial counter block, as the spec (and
    libolm's, the js-sdk's) use it: the counter wraps over all 128 bits."""
    return AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv)


# --------------------------------------------------------------------- aes-hmac-sha2
def _derive(key: bytes, name: str) -> tuple[bytes, bytes]:
    out = hkdf_sha256(key, 64, name.encode())
    return out[:32], out[32:]


def _new_iv() -> bytes:
    iv = bytearray(os.urandom(16))
    iv[8] &= 0x7F
    return bytes(iv)


def encrypt(plaintext: str, key: bytes, name: str, iv: bytes | None = None) -> dict[str, str]:
    """``{"iv", "ciphertext", "mac"}`` of ``plaintext`` under ``key`` for secret ``name``."""
    iv = iv if iv is not None else _new_iv()
    aes_key, mac_key = _derive(key, name)
    ciphertext = _ctr(aes_key, iv).encrypt(plaintext.encode())
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    return {"iv": b64(iv), "ciphertext": b64(ciphertext), "mac": b64(mac)}


def decrypt(item: dict[str, Any], key: bytes, name: str) -> str:
    """The secret; ``secret_storage_bad_mac`` when the key is wrong or the item edited."""
    try:
        iv, ciphertext, mac = (b64_decode(str(item[k])) for k in ("iv", "ciphertext", "mac"))
    except KeyError as exc:
        raise FnError("secret_storage_corrupt", f"secret {name} lacks {exc}") from exc
    aes_key, mac_key = _derive(key, name)
    if not hmac.compare_digest(hmac.new(mac_key, ciphertext, hashlib.sha256).digest(), mac):
        raise FnError("secret_storage_bad_mac", f"secret {name}: wrong key or edited ciphertext")
    try:
        return bytes(_ctr(aes_key, iv).decrypt(ciphertext)).decode()
    except UnicodeDecodeError as exc:
        raise FnError("secret_storage_corrupt", f"secret {name} is not UTF-8") from exc


def key_check(key: bytes, iv: bytes | None = None) -> dict[str, str]:
    """``{"iv", "mac"}`` for a key description: 32 zero bytes encrypted with the empty name."""
    out = encrypt("\0" * 32, key, "", iv)
    return {"iv": out["iv"], "mac": out["mac"]}


def key_matches(key: bytes, description: dict[str, Any]) -> bool:
    """Is ``key`` the one ``description`` (``m.secret_storage.key.<id>``) was made for?"""
    if description.get("algorithm") != AES_HMAC_SHA2 or "iv" not in description or "mac" not in description:
        return False
    check = key_check(key, b64_decode(str(description["iv"])))
    return hmac.compare_digest(
        str(check["mac"]).rstrip("="), str(description["mac"]).rstrip("=")
    )


@dataclass(frozen=True)
class StorageKey:
    """A secret-storage key with its id and account-data description."""

    key_id: str
    key: bytes
    description: dict[str, Any]

    @property
    def recovery_key(self) -> str:
        return encode_recovery_key(self.key)

    @classmethod
    def generate(cls, passphrase: str | None = None, iterations: int = PBKDF2_ITERATIONS) -> StorageKey:
        """A new key (random, or from ``passphrase`` with a fresh salt); a random 32-char id."""
        alphabet = string.ascii_letters + string.digits
        key_id = "".join(secrets.choice(alphabet) for _ in range(32))
        description: dict[str, Any] = {"algorithm": AES_HMAC_SHA2, "name": "meshagents recovery key"}
        if passphrase is not None:
            salt = "".join(secrets.choice(alphabet) for _ in range(32))
            key = passphrase_key(passphrase, salt, iterations)
            description["passphrase"] = {
                "algorithm": "m.pbkdf2", "salt": salt, "iterations": iterations, "bits": 256,
            }  # fmt: skip
        else:
            key = os.urandom(32)
        description.update(key_check(key))
        return cls(key_id, key, description)


def secret_content(secret: str, key: StorageKey, name: str) -> dict[str, Any]:
    """The account-data content for secret ``name`` encrypted under ``key`` only."""
    return {"encrypted": {key.key_id: encrypt(secret, key.key, name)}}


def read_secret(content: dict[str, Any], key_id: str, key: bytes, name: str) -> str:
    item = (content.get("encrypted") or {}).get(key_id)
    if not isinstance(item, dict):
        raise FnError("secret_not_stored", f"secret {name} is not encrypted under key {key_id}")
    return decrypt(item, key, name)


# --------------------------------------------------------------------- what goes in
def cross_signing_secrets(seeds: crosssign.CrossSigningSeeds) -> dict[str, str]:
    return {
        MASTER: crosssign.b64u(seeds.master),
        SELF_SIGNING: crosssign.b64u(seeds.self_signing),
        USER_SIGNING: crosssign.b64u(seeds.user_signing),
    }


def backup_public_key(private: bytes) -> str:
    return crosssign.b64u(bytes(PrivateKey(private).public_key))


def backup_version_body(user_id: str, private: bytes, seeds: crosssign.CrossSigningSeeds) -> dict[str, Any]:
    """Body of ``POST /room_keys/version``: ``auth_data`` signed by the master key."""
    auth = crosssign.sign_json(
        {"public_key": backup_public_key(private)}, user_id, seeds.master_public, seeds.master
    )
    return {"algorithm": BACKUP_ALGORITHM, "auth_data": auth}


# --------------------------------------------------------------------- room keys into the backup
def _backup_keys(shared: bytes) -> tuple[bytes, bytes, bytes]:
    out = hkdf_sha256(shared, 80, b"")
    return out[:32], out[32:64], out[64:]


def encrypt_backup_session(
    backup_public: str, session: dict[str, Any], ephemeral: bytes | None = None
) -> dict[str, str]:
    """``session_data`` of one room key for ``m.megolm_backup.v1.curve25519-aes-sha2``:
    X25519 with a fresh ephemeral key, HKDF-SHA256 (zero salt, empty info, 80 bytes: AES
    key, MAC key, IV), AES-256-CBC with PKCS#7 over the JSON. The ``mac`` is the first 8
    bytes of HMAC-SHA256 over the *empty* string, as libolm does and the spec records
    (every reader expects that). Unpadded base64, as libolm writes it."""
    eph = PrivateKey(ephemeral) if ephemeral is not None else PrivateKey.generate()
    shared = crypto_scalarmult(bytes(eph), crosssign.b64u_decode(backup_public))
    aes_key, mac_key, iv = _backup_keys(shared)
    plain = pad(json.dumps(session, separators=(",", ":")).encode(), 16, style="pkcs7")
    ciphertext = AES.new(aes_key, AES.MODE_CBC, iv=iv).encrypt(plain)
    mac = hmac.new(mac_key, b"", hashlib.sha256).digest()[:8]
    return {
        "ephemeral": crosssign.b64u(bytes(eph.public_key)),
        "ciphertext": crosssign.b64u(ciphertext),
        "mac": crosssign.b64u(mac),
    }


def decrypt_backup_session(backup_private: bytes, data: dict[str, Any]) -> dict[str, Any]:
    """The inverse (for tests and for reading the backup); ``secret_storage_bad_mac`` on a bad MAC."""
    shared = crypto_scalarmult(backup_private, b64_decode(str(data["ephemeral"])))
    aes_key, mac_key, iv = _backup_keys(shared)
    expected = hmac.new(mac_key, b"", hashlib.sha256).digest()[:8]
    if not hmac.compare_digest(expected, b64_decode(str(data["mac"]))):
        raise FnError("secret_storage_bad_mac", "backed-up room key: bad MAC")
    raw = AES.new(aes_key, AES.MODE_CBC, iv=iv).decrypt(b64_decode(str(data["ciphertext"])))
    out: dict[str, Any] = json.loads(unpad(raw, 16, style="pkcs7"))
    return out
