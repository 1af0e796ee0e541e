"""enrollment_token_create: a one-use, operator-signed enrollment token (text and QR code).

The token pins its profile: the sha256 of the profile's canonical ``{name, capabilities}``
(read from ``--profiles-dir``, else the operator configuration's ``profiles_dir``) and
the controller keys the device's manifest may name (``--controllers``, else the
operator configuration's, else this machine's ``controller/ed25519``). At enrollment the
device refuses a manifest beyond either (``manifest_beyond_token``), however it is signed.
"""

from __future__ import annotations

import re
from pathlib import Path

from meshagents import opconfig
from meshagents.errors import FnError
from meshagents.inputs import check_device_name, check_hub_endpoint
from meshagents.runtime.catalog import function
from meshagents.trust import tokens
from meshagents.trust.keystore import CONTROLLER_KEY, OPERATOR_KEY, load_signing_key, open_keystore
from meshagents.trust.review import profile_sha256
from meshagents.trust.signing import public_b64
from meshagents.wg.keys import check_key


def _default_controllers(cfg: opconfig.OperatorConfig) -> list[str] | None:
    if cfg.controllers is not None:
        return list(cfg.controllers)
    if open_keystore().exists(CONTROLLER_KEY):
        return [public_b64(load_signing_key(CONTROLLER_KEY))]
    return None


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
    profiles_dir: Path | None = None,
    controllers: list[str] | None = None,
    operator_config: Path | None = None,
    bundle_sha256: str | None = None,
) -> dict[str, object]:
    """Create an enrollment token for DEVICE_NAME pinning its profile's hash; optionally as a QR code.

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
        profile: capability profile the device's manifest must stay within: a profile name from the
            operator's profiles directory (shipped: default, minimal, workstation); its content hash goes
            into the token.
        qr_png: also write the token as a QR code PNG to this file.
        qr_terminal: also print the token as a text QR code (the qr_terminal field).
        allow_loopback: accept a loopback hub_endpoint (localhost, 127.0.0.0/8, ::1), for a device on this
            same machine (tests, demo).
        profiles_dir: where the profile is read from; default: the operator configuration's.
        controllers: base64 ed25519 controller keys the device's manifest must name (repeat the option);
            default: the operator configuration's, else this machine's controller key.
        operator_config: the operator's own configuration file; default: $FN_OPERATOR_CONFIG, else
            <state>/operator/operator.toml.
        bundle_sha256: the SHA-256 of the hub's install bundle manifest (64 hex digits) that the device's
            install.sh must fetch and refuse otherwise (docs/install.md); default: none.
    """
    check_device_name(device_name)
    if bundle_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", bundle_sha256):
        raise FnError("bad_usage", "bundle_sha256: 64 lowercase hex digits (the bundle manifest's SHA-256)")
    if hub_endpoint:  # checked before anything is signed: a token no device can use is refused
        hub_endpoint = check_hub_endpoint(hub_endpoint, allow_loopback=allow_loopback)
    if hub_public_key:
        hub_public_key = check_key(hub_public_key, "hub public key")
    cfg = opconfig.load(operator_config)
    if profiles_dir is not None:
        cfg = opconfig.OperatorConfig(
            cfg.path, cfg.exists, cfg.controllers, cfg.approvers, cfg.operator_key, profiles_dir
        )
    digest = profile_sha256(opconfig.load_profile(cfg, profile))  # profile_unknown / profile_invalid
    pinned = list(controllers) if controllers else _default_controllers(cfg)
    token, compact = tokens.create(
        load_signing_key(OPERATOR_KEY),
        device_name=device_name,
        hub_endpoint=hub_endpoint,
        hub_public_key=hub_public_key,
        profile=profile,
        ttl_s=ttl_s,
        profile_sha256=digest,
        controllers=pinned,
        bundle_sha256=bundle_sha256,
    )
    # the operator's own record of what this token named: sign_pending_manifests reads it
    opconfig.record_token(
        device_name=token.device_name, profile=profile, profile_sha256=digest, token_id=token.token_id,
        expires_at=token.expires_at,
    )  # fmt: skip
    out: dict[str, object] = {
        "token": compact,
        "token_id": token.token_id,
        "device_name": token.device_name,
        "profile": token.profile,
        "profile_sha256": token.profile_sha256,
        "controllers": token.controllers,
        "bundle_sha256": token.bundle_sha256,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
    }
    if qr_png is not None:
        out["qr_png"] = str(tokens.qr_png(compact, qr_png))
    if qr_terminal:
        out["qr_terminal"] = tokens.qr_terminal(compact)
    return out
