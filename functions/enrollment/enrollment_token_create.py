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
    """Create an enrollment token for DEVICE_NAME; optionally as a PNG and terminal QR code.

    Args:
        device_name: name the device gets on the mesh and in Matrix: lowercase letters, digits, _ . -,
            starting with a letter or digit (e.g. home-wsl); keep it to 63 characters (up to 128 pass here,
            but the mesh and Matrix refuse more than 63 at enrollment).
        ttl_s: seconds the token stays valid (> 0).
        hub_endpoint: base URL of the hub's public enrollment server, with scheme, e.g.
            https://hub.example.org:8443; refused (bad_endpoint) without scheme or host, for 0.0.0.0/:: and,
            unless allow_loopback, for loopback hosts. Default "": none, the device must pass --hub-url.
        hub_public_key: the hub's base64 WireGuard public key (32 bytes); the device then refuses a hub that
            answers with another one. Default "": not checked.
        profile: capability profile the hub puts in the device's manifest: a profile name from the hub's
            profiles directory (shipped: default, minimal, workstation).
        qr_png: also write the token as a QR code PNG to this file.
        qr_terminal: also print the token as a text QR code (the qr_terminal field).
        allow_loopback: accept a loopback hub_endpoint (localhost, 127.0.0.0/8, ::1), for a device on this
            same machine (tests, demo).
    """
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
