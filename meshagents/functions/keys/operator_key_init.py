"""operator_key_init: create the operator ed25519 key in the key store if missing, and pin it."""

from __future__ import annotations

from meshagents.runtime.catalog import function
from meshagents.trust.keystore import OPERATOR_KEY, init_signing_key, open_keystore
from meshagents.trust.rotation import pin_operator_key, pinned_path
from meshagents.trust.signing import public_b64


@function(id="operator_key_init", group="keys", requires=["keystore"])
def operator_key_init() -> dict[str, object]:
    """Create the operator signing key (operator/ed25519) if missing; print its public key."""
    store = open_keystore()
    key, created = init_signing_key(OPERATOR_KEY, store)
    public = public_b64(key)
    pinned = pin_operator_key(public)
    return {
        "created": created,
        "name": OPERATOR_KEY,
        "keystore": store.kind,
        "public_key": public,
        "pinned": pinned,
        "pinned_path": str(pinned_path()),
    }
