"""device_key_init: create this device's ed25519 key (signs audit checkpoints) if missing."""

from __future__ import annotations

from meshagents.runtime.catalog import function
from meshagents.trust.keystore import DEVICE_KEY, init_signing_key, open_keystore
from meshagents.trust.signing import public_b64


@function(id="device_key_init", group="keys", requires=["keystore"])
def device_key_init() -> dict[str, object]:
    """Create the device signing key (device/ed25519) if missing; print its public key."""
    store = open_keystore()
    key, created = init_signing_key(DEVICE_KEY, store)
    return {"created": created, "name": DEVICE_KEY, "keystore": store.kind, "public_key": public_b64(key)}
