"""enrollment_token_verify: check (and by default use up) an enrollment token."""

from __future__ import annotations

from meshagents.runtime.catalog import function
from meshagents.trust import tokens
from meshagents.trust.paths import token_store_path
from meshagents.trust.rotation import current_operator_key


@function(id="enrollment_token_verify", group="enrollment")
def enrollment_token_verify(
    token: str, consume: bool = True, operator_key: str | None = None
) -> dict[str, object]:
    """Verify an enrollment token; fails with token_invalid, token_expired or token_used.

    Args:
        token: the enrollment token text (mat1.<payload>.<signature>).
        consume: mark the token used in <state>/trust/tokens.sqlite, so a second use fails token_used;
            --no-consume only checks.
        operator_key: base64 ed25519 operator public key the token must be signed by; default: the key pinned
            on this machine (following signed rotations), else the operator key in the key store.
    """
    store = tokens.TokenStore(token_store_path())
    try:
        tok = tokens.verify(token, current_operator_key(operator_key), store, consume=consume)
    finally:
        store.close()
    return {
        "ok": True,
        "token_id": tok.token_id,
        "device_name": tok.device_name,
        "hub_endpoint": tok.hub_endpoint,
        "hub_public_key": tok.hub_public_key,
        "profile": tok.profile,
        "expires_at": tok.expires_at,
        "consumed": consume,
    }
