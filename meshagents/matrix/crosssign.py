"""Matrix cross-signing on PyNaCl: pure helpers, no I/O.

nio has no cross-signing, and current Element ignores devices their owner has not
cross-signed (MSC4153). A client therefore owns three ed25519 keys:

    master ──signs──▶ self-signing ──signs──▶ each of the user's own devices
       └────signs──▶ user-signing  (signs other users' master keys; unused here)

Signatures follow the spec's "signing JSON": canonical JSON of the object without
``signatures`` and ``unsigned``, ed25519, unpadded standard base64, stored under
``signatures[user_id]["ed25519:<key id>"]``. For cross-signing keys the key id is the
public key itself. ``check_device_chain`` walks a ``/keys/query`` answer and says
whether a device is signed by its owner's self-signing key, which is signed by the
owner's master key (optionally pinned).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
from canonicaljson import encode_canonical_json

#: Integers outside this range are not canonical JSON in Matrix.
_MAX_INT = 2**53 - 1


def b64u(raw: bytes) -> str:
    """Unpadded standard base64, as Matrix writes keys and signatures."""
    return base64.b64encode(raw).decode().rstrip("=")


def b64u_decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _check_numbers(obj: Any) -> None:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, float):
        raise ValueError("floats are not allowed in signed Matrix JSON")
    if isinstance(obj, int):
        if not -_MAX_INT <= obj <= _MAX_INT:
            raise ValueError("integer out of the canonical JSON range")
        return
    if isinstance(obj, dict):
        for v in obj.values():
            _check_numbers(v)
        return
    if isinstance(obj, list | tuple):
        for v in obj:
            _check_numbers(v)
        return
    raise ValueError(f"not JSON: {type(obj).__name__}")


def signing_bytes(obj: dict[str, Any]) -> bytes:
    """Canonical JSON of ``obj`` without ``signatures`` and ``unsigned``."""
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    _check_numbers(body)
    return bytes(encode_canonical_json(body))


def public_key(seed: bytes) -> str:
    """The unpadded base64 ed25519 public key for a 32-byte seed."""
    return b64u(bytes(nacl.signing.SigningKey(seed).verify_key))


def sign_json(obj: dict[str, Any], user_id: str, key_id: str, seed: bytes) -> dict[str, Any]:
    """A copy of ``obj`` with one more signature ``signatures[user_id]["ed25519:"+key_id]``."""
    sig = nacl.signing.SigningKey(seed).sign(signing_bytes(obj)).signature
    out = copy.deepcopy(obj)
    out.setdefault("signatures", {}).setdefault(user_id, {})[f"ed25519:{key_id}"] = b64u(sig)
    return out


def verify_json(obj: dict[str, Any], user_id: str, key_id: str, public_b64: str) -> bool:
    """True when ``obj`` carries a valid signature by ``public_b64`` under ``user_id``/``key_id``."""
    try:
        sig = obj["signatures"][user_id][f"ed25519:{key_id}"]
        vk = nacl.signing.VerifyKey(b64u_decode(public_b64))
        vk.verify(signing_bytes(obj), b64u_decode(sig))
        return True
    except (KeyError, TypeError, ValueError, nacl.exceptions.BadSignatureError):
        return False


@dataclass(frozen=True)
class CrossSigningSeeds:
    """The three 32-byte seeds. Kept 0600 next to the store; never regenerated."""

    master: bytes
    self_signing: bytes
    user_signing: bytes

    def __post_init__(self) -> None:
        for name in ("master", "self_signing", "user_signing"):
            if len(getattr(self, name)) != 32:
                raise ValueError(f"{name} seed must be 32 bytes")

    @classmethod
    def generate(cls) -> CrossSigningSeeds:
        import os

        return cls(os.urandom(32), os.urandom(32), os.urandom(32))

    def to_json(self) -> dict[str, str]:
        return {
            "master": b64u(self.master),
            "self_signing": b64u(self.self_signing),
            "user_signing": b64u(self.user_signing),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> CrossSigningSeeds:
        return cls(
            b64u_decode(data["master"]), b64u_decode(data["self_signing"]), b64u_decode(data["user_signing"])
        )

    @property
    def master_public(self) -> str:
        return public_key(self.master)

    @property
    def self_signing_public(self) -> str:
        return public_key(self.self_signing)

    @property
    def user_signing_public(self) -> str:
        return public_key(self.user_signing)


def key_object(user_id: str, usage: str, public: str) -> dict[str, Any]:
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}


def device_signing_upload(user_id: str, seeds: CrossSigningSeeds) -> dict[str, Any]:
    """Body of ``POST /keys/device_signing/upload`` (without ``auth``)."""
    master = seeds.master_public
    return {
        "master_key": key_object(user_id, "master", master),
        "self_signing_key": sign_json(
            key_object(user_id, "self_signing", seeds.self_signing_public), user_id, master, seeds.master
        ),
        "user_signing_key": sign_json(
            key_object(user_id, "user_signing", seeds.user_signing_public), user_id, master, seeds.master
        ),
    }


def sign_device(device_keys: dict[str, Any], user_id: str, seeds: CrossSigningSeeds) -> dict[str, Any]:
    """The device key object signed by the self-signing key (only that signature kept),
    ready for ``POST /keys/signatures/upload`` as ``{user_id: {device_id: <this>}}``."""
    bare = {k: v for k, v in device_keys.items() if k not in ("signatures", "unsigned")}
    return sign_json(bare, user_id, seeds.self_signing_public, seeds.self_signing)


def _single_ed25519(key_obj: dict[str, Any]) -> str | None:
    keys = key_obj.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    ((kid, pub),) = keys.items()
    if not isinstance(kid, str) or not isinstance(pub, str) or kid != f"ed25519:{pub}":
        return None
    return pub


@dataclass(frozen=True)
class ChainResult:
    """Outcome of checking one device's cross-signing chain."""

    ok: bool
    reason: str  # "ok" or a stable snake_case reason
    master_key: str | None = None
    device_ed25519: str | None = None
    device_curve25519: str | None = None


def _device_keys(device: dict[str, Any], device_id: str) -> tuple[str | None, str | None]:
    keys = device.get("keys", {})
    return keys.get(f"ed25519:{device_id}"), keys.get(f"curve25519:{device_id}")


def check_device_chain(
    query: dict[str, Any], user_id: str, device_id: str, pinned_master: str | None = None
) -> ChainResult:
    """Is ``device_id`` of ``user_id`` cross-signed, per a ``/keys/query`` answer?

    Requires: the master key (equal to ``pinned_master`` when given) has usage master;
    the self-signing key has usage self_signing and is signed by the master key; the
    device is self-signed by its own ed25519 key and signed by the self-signing key.
    (Synapse only returns the requester's own signatures on someone else's master key,
    so nothing is required there.)
    """
    master_obj = query.get("master_keys", {}).get(user_id)
    if not isinstance(master_obj, dict):
        return ChainResult(False, "no_master_key")
    master = _single_ed25519(master_obj)
    if master is None or master_obj.get("user_id") != user_id or "master" not in master_obj.get("usage", []):
        return ChainResult(False, "bad_master_key")
    if pinned_master is not None and master != pinned_master:
        return ChainResult(False, "master_key_changed", master)
    ssk_obj = query.get("self_signing_keys", {}).get(user_id)
    if not isinstance(ssk_obj, dict):
        return ChainResult(False, "no_self_signing_key", master)
    ssk = _single_ed25519(ssk_obj)
    if ssk is None or ssk_obj.get("user_id") != user_id or "self_signing" not in ssk_obj.get("usage", []):
        return ChainResult(False, "bad_self_signing_key", master)
    if not verify_json(ssk_obj, user_id, master, master):
        return ChainResult(False, "self_signing_not_signed_by_master", master)
    device = query.get("device_keys", {}).get(user_id, {}).get(device_id)
    if (
        not isinstance(device, dict)
        or device.get("user_id") != user_id
        or device.get("device_id") != device_id
    ):
        return ChainResult(False, "no_device", master)
    ed, curve = _device_keys(device, device_id)
    if ed is None or curve is None:
        return ChainResult(False, "bad_device_keys", master)
    if not verify_json(device, user_id, device_id, ed):
        return ChainResult(False, "device_not_self_signed", master, ed, curve)
    if not verify_json(device, user_id, ssk, ssk):
        return ChainResult(False, "device_not_cross_signed", master, ed, curve)
    return ChainResult(True, "ok", master, ed, curve)


def device_for_curve_key(query: dict[str, Any], user_id: str, curve25519: str) -> str | None:
    """The device id of ``user_id`` whose curve25519 identity key is ``curve25519``."""
    for device_id, device in query.get("device_keys", {}).get(user_id, {}).items():
        if isinstance(device, dict) and _device_keys(device, device_id)[1] == curve25519:
            return str(device_id)
    return None
