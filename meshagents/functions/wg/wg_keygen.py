"""wg_keygen: a WireGuard X25519 key pair (and optionally a preshared key), like `wg genkey`.

A thin adapter over :mod:`meshagents.wg.keys`, which makes and derives the keys.
"""

from __future__ import annotations

from meshagents.runtime.catalog import function
from meshagents.wg.keys import clamp, new_key_pair, public_from_private

__all__ = ["clamp", "public_from_private", "wg_keygen"]


@function(id="wg_keygen", group="wg")
def wg_keygen(preshared: bool = False) -> dict[str, str]:
    """Make a WireGuard key pair (base64, as `wg genkey | wg pubkey`), optionally a preshared key.

    Args:
        preshared: also make a random 32-byte preshared key (printed base64 as preshared_key).
    """
    return new_key_pair(preshared)
