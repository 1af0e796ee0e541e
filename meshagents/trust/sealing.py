"""The enrollment answer's secrets, sealed to the device's own key (pure, no I/O).

    check_device_key(device_key_b64)                       # FnError("invalid_key")
    sealed = seal_secrets(device_key_b64, {"preshared_key": ..., "matrix_password": ...})
    secrets = open_secrets(device_signing_key, sealed)    # FnError("enroll_sealed_invalid")
    answer = seal_answer(answer, device_key_b64)          # the hub's /enroll answer, secrets moved
    answer, sealed = unseal_answer(answer, device_signing_key)   # the device puts them back

Scheme ``x25519-sealedbox-ed25519``: the device already sends its ed25519 device key
in ``/enroll`` (the manifest names it); the hub converts that public key to X25519
(the birational map libsodium implements, ``crypto_sign_ed25519_pk_to_curve25519``)
and seals a canonical-JSON object of the secrets with a libsodium sealed box
(ephemeral X25519 + XSalsa20-Poly1305). Only the holder of the device's private key
can open it, so a passive reader of a plain-HTTP ``/enroll`` learns no Matrix
password and no WireGuard preshared key. An active man in the middle of plain HTTP
can still steal the token itself: TLS (or the mesh) is the answer to that one.
"""

from __future__ import annotations

from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey

from meshagents.errors import FnError
from meshagents.trust.canonical import b64decode, b64encode, canonical_bytes, loads_strict

SCHEME = "x25519-sealedbox-ed25519"


def _curve_public(device_key_b64: str) -> PublicKey:
    try:
        return VerifyKey(b64decode(device_key_b64, size=32, what="device key")).to_curve25519_public_key()
    except (CryptoError, ValueError, FnError) as exc:
        raise FnError("invalid_key", "the device key is not a usable ed25519 public key") from exc


def check_device_key(device_key_b64: str) -> None:
    """FnError("invalid_key") unless secrets can be sealed to this key (check before any work)."""
    _curve_public(device_key_b64)


def seal_secrets(device_key_b64: str, secrets: dict[str, Any]) -> str:
    return b64encode(SealedBox(_curve_public(device_key_b64)).encrypt(canonical_bytes(secrets)))


def open_secrets(key: SigningKey, sealed: str) -> dict[str, Any]:
    try:
        raw = SealedBox(key.to_curve25519_private_key()).decrypt(b64decode(sealed, what="sealed secrets"))
        data = loads_strict(raw)
    except (CryptoError, FnError, ValueError) as exc:
        why = "the sealed secrets do not open with this device's key"
        raise FnError("enroll_sealed_invalid", why) from exc
    if not isinstance(data, dict):
        raise FnError("enroll_sealed_invalid", "the sealed secrets are not an object")
    return data


def seal_answer(answer: dict[str, Any], device_key_b64: str) -> dict[str, Any]:
    """``answer`` with ``preshared_key`` and ``matrix.password`` moved into ``sealed``."""
    out = dict(answer)
    secrets: dict[str, Any] = {}
    if out.get("preshared_key"):
        secrets["preshared_key"] = out["preshared_key"]
    out["preshared_key"] = None
    matrix = out.get("matrix")
    if isinstance(matrix, dict) and matrix.get("password"):
        secrets["matrix_password"] = matrix["password"]
        out["matrix"] = {k: v for k, v in matrix.items() if k != "password"}
    if secrets:
        out["sealed"] = {"scheme": SCHEME, "box": seal_secrets(device_key_b64, secrets)}
    return out


def unseal_answer(answer: dict[str, Any], key: SigningKey) -> tuple[dict[str, Any], bool]:
    """The answer with its sealed secrets back in place; (answer, whether it was sealed)."""
    sealed = answer.get("sealed")
    if sealed is None:
        return answer, False
    box = sealed.get("box") if isinstance(sealed, dict) else None
    if not isinstance(sealed, dict) or sealed.get("scheme") != SCHEME or not isinstance(box, str):
        raise FnError("enroll_sealed_invalid", f"unknown sealed-secrets form (expected scheme {SCHEME})")
    secrets = open_secrets(key, box)
    out = {k: v for k, v in answer.items() if k != "sealed"}
    if isinstance(secrets.get("preshared_key"), str):
        out["preshared_key"] = secrets["preshared_key"]
    matrix = out.get("matrix")
    if isinstance(secrets.get("matrix_password"), str) and isinstance(matrix, dict):
        out["matrix"] = {**matrix, "password": secrets["matrix_password"]}
    return out, True
