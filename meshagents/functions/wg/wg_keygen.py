"""wg_keygen: a WireGuard X25519 key pair (and optionally a preshared key), like `wg genkey`."""

from __future__ import annotations

import base64

from nacl.bindings import crypto_scalarmult_base
from nacl.utils import random

from meshagents.runtime.catalog import function


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


@function(id="wg_keygen", group="wg")
def wg_keygen(preshared: bool = False) -> dict[str, str]:
    """Make a WireGuard key pair (base64, as `wg genkey | wg pubkey`), optionally a preshared key.

    Args:
        preshared: also make a random 32-byte preshared key (printed base64 as preshared_key).
    """
    private = clamp(random(32))
    out = {
        "private_key": base64.b64encode(private).decode(),
        "public_key": base64.b64encode(crypto_scalarmult_base(private)).decode(),
    }
    if preshared:
        out["preshared_key"] = base64.b64encode(random(32)).decode()
    return out
