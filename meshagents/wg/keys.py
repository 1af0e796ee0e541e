"""WireGuard key text: base64 everywhere except UAPI, which speaks hex."""

from __future__ import annotations

import base64
import binascii

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
