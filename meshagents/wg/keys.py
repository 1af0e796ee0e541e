"""WireGuard keys: made and derived here (X25519, as `wg genkey` / `wg pubkey`), and their text:
base64 everywhere except UAPI, which speaks hex.

The catalog function ``wg_keygen`` is a thin adapter over :func:`new_key_pair`; the library
(hub setup, the UAPI client, Docker deep mode) calls these functions directly.
"""

from __future__ import annotations

import base64
import binascii

from nacl.bindings import crypto_scalarmult_base
from nacl.utils import random

from meshagents.errors import FnError


def check_key(key: str, what: str = "key") -> str:
    """``key`` stripped if it is base64 of 32 bytes, else FnError ``invalid_key``."""
    text = key.strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FnError("invalid_key", f"{what} is not base64") from exc
    if len(raw) != 32:
        raise FnError("invalid_key", f"{what} must be 32 bytes, got {len(raw)}")
    return text


def b64_to_hex(key: str) -> str:
    return base64.b64decode(key, validate=True).hex()


def hex_to_b64(key: str) -> str:
    return binascii.b2a_base64(bytes.fromhex(key), newline=False).decode()


def clamp(private: bytes) -> bytes:
    """Clamp a 32-byte scalar the way `wg genkey` does (RFC 7748)."""
    b = bytearray(private)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)


def public_from_private(private_b64: str) -> str:
    """The base64 public key of a base64 private key, as `wg pubkey` prints it."""
    raw = base64.b64decode(private_b64, validate=True)
    if len(raw) != 32:
        raise ValueError("a WireGuard key is 32 bytes")
    return base64.b64encode(crypto_scalarmult_base(clamp(raw))).decode()


def new_key_pair(preshared: bool = False) -> dict[str, str]:
    """A fresh key pair (base64 ``private_key``, ``public_key``), optionally a ``preshared_key``."""
    private = clamp(random(32))
    out = {
        "private_key": base64.b64encode(private).decode(),
        "public_key": base64.b64encode(crypto_scalarmult_base(private)).decode(),
    }
    if preshared:
        out["preshared_key"] = base64.b64encode(random(32)).decode()
    return out
