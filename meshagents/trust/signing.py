"""Detached, domain-separated ed25519 signatures over canonical JSON.

Public API::

    TYPE_MANIFEST, TYPE_TOKEN, TYPE_ENVELOPE, TYPE_CHECKPOINT, TYPE_ROTATION  # the `type` values
    signing_message(payload: dict, expected_type: str) -> bytes
    sign_payload(payload: dict, key: SigningKey, expected_type: str) -> str          # base64 signature
    verify_payload(payload: dict, signature_b64: str, public_b64: str, expected_type: str) -> bool
    public_b64(key: SigningKey) -> str
    signing_key_from_seed(seed: bytes) -> SigningKey

The message signed is ``b"meshagents-sig-v1\\x00" + type + b"\\x00" + canonical(payload)``,
where ``payload`` is the object without its ``signature``/``signatures`` field and must
itself carry ``type == expected_type``. The type therefore appears twice: inside the
canonical payload (so a reader sees it) and as a prefix fixed by the verifier (so a
signature made for a token can never verify as a manifest, an envelope or a
checkpoint, even if a caller forgot to look at the field).
"""

from __future__ import annotations

import functools
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from meshagents.errors import FnError
from meshagents.trust.canonical import b64decode, b64encode, canonical_bytes

TYPE_MANIFEST = "meshagents.manifest.v1"
TYPE_TOKEN = "meshagents.enrollment_token.v1"  # noqa: S105 - a type tag, not a secret
TYPE_ENVELOPE = "meshagents.envelope.v1"
TYPE_CHECKPOINT = "meshagents.audit_checkpoint.v1"
TYPE_ROTATION = "meshagents.rotation.v1"
TYPE_MATRIX_IDENTITY = "meshagents.matrix_identity.v1"  # meshagents.matrix.identity
TYPE_LEAVE = "meshagents.leave.v1"  # meshagents.trust.leave: a device asks the hub to revoke it
ALL_TYPES = frozenset({TYPE_MANIFEST, TYPE_TOKEN, TYPE_ENVELOPE, TYPE_CHECKPOINT, TYPE_ROTATION,
                       TYPE_MATRIX_IDENTITY, TYPE_LEAVE})

_PREFIX = b"meshagents-sig-v1\x00"
SIGNATURE_FIELDS = ("signature", "signatures")


def strip_signature(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as signed: without its signature field(s) (key order kept)."""
    body = dict(obj)
    for name in SIGNATURE_FIELDS:
        body.pop(name, None)
    return body


def signing_message(payload: dict[str, Any], expected_type: str) -> bytes:
    if expected_type not in ALL_TYPES:
        raise FnError("signature_type_unknown", f"unknown payload type {expected_type!r}")
    body = strip_signature(payload)
    if body.get("type") != expected_type:
        found = body.get("type")
        raise FnError("signature_type_mismatch", f"payload type {found!r} is not {expected_type!r}")
    return _PREFIX + expected_type.encode("ascii") + b"\x00" + canonical_bytes(body)


def public_b64(key: SigningKey) -> str:
    return b64encode(bytes(key.verify_key))


def signing_key_from_seed(seed: bytes) -> SigningKey:
    if len(seed) != 32:
        raise FnError("key_invalid", "an ed25519 seed is 32 bytes")
    return SigningKey(seed)


def sign_payload(payload: dict[str, Any], key: SigningKey, expected_type: str) -> str:
    """Base64 detached signature of ``payload`` (its signature field, if any, ignored)."""
    return b64encode(key.sign(signing_message(payload, expected_type)).signature)


@functools.lru_cache(maxsize=1024)
def _verify_key(public: str) -> VerifyKey:
    # Pure function of the key text; caching saves the decode and the point check per call.
    return VerifyKey(b64decode(public, size=32, what="public key"))


def verify_key_from_b64(public: str, what: str = "public key") -> VerifyKey:
    try:
        return _verify_key(public)
    except FnError as exc:
        raise FnError(exc.code, f"{what}: {exc.message}") from exc


def verify_payload(payload: dict[str, Any], signature_b64: str, public: str, expected_type: str) -> bool:
    """True when ``signature_b64`` is ``public``'s signature of ``payload``; never raises."""
    try:
        sig = b64decode(signature_b64, size=64, what="signature")
        vk = verify_key_from_b64(public)
        vk.verify(signing_message(payload, expected_type), sig)
    except (FnError, BadSignatureError, ValueError, TypeError):
        return False
    return True
