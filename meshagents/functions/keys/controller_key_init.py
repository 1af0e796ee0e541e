"""controller_key_init: create the controller ed25519 key (signs request envelopes) if missing."""

from __future__ import annotations

from meshagents.runtime.catalog import function
from meshagents.trust.keystore import CONTROLLER_KEY, init_signing_key, open_keystore
from meshagents.trust.signing import public_b64


@function(id="controller_key_init", group="keys", requires=["keystore"])
def controller_key_init() -> dict[str, object]:
    """Create the controller signing key (controller/ed25519) if missing; print its public key."""
    store = open_keystore()
    key, created = init_signing_key(CONTROLLER_KEY, store)
    return {"created": created, "name": CONTROLLER_KEY, "keystore": store.kind, "public_key": public_b64(key)}
