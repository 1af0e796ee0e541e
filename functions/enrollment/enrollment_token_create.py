"""enrollment_token_create: a one-use, operator-signed enrollment token (text and QR code)."""

from __future__ import annotations

from pathlib import Path

from meshagents.catalog import function
from meshagents.inputs import check_device_name, check_hub_endpoint
from meshagents.trust import tokens
from meshagents.trust.keystore import OPERATOR_KEY, load_signing_key
from meshagents.wg.keys import check_key


@function(id="enrollment_token_create", group="enrollment", requires=["keystore"])
def enrollment_token_create(
    device_name: str,
    ttl_s: int = 600,
    hub_endpoint: str = "",
    hub_public_key: str = "",
    profile: str = "default",
    qr_png: Path | None = None,
    qr_terminal: bool = False,
    allow_loopback: bool = False,
) -> dict[str, object]:
    """Create an enrollment token for DEVICE_NAME; optionally as a PNG and terminal QR code."""
    check_device_name(device_name)
    if hub_endpoint:  # checked before anything is signed: a token no device can use is refused
        hub_endpoint = check_hub_endpoint(hub_endpoint, allow_loopback=allow_loopback)
    if hub_public_key:
        hub_public_key = check_key(hub_public_key, "hub public key")
    token, compact = tokens.create(
        load_signing_key(OPERATOR_KEY),
        device_name=device_name,
        hub_endpoint=hub_endpoint,
        hub_public_key=hub_public_key,
        profile=profile,
        ttl_s=ttl_s,
    )
    out: dict[str, object] = {
        "token": compact,
        "token_id": token.token_id,
        "device_name": token.device_name,
        "profile": token.profile,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
    }
    if qr_png is not None:
        out["qr_png"] = str(tokens.qr_png(compact, qr_png))
    if qr_terminal:
        out["qr_terminal"] = tokens.qr_terminal(compact)
    return out
