"""enrollment_token_create: a one-use, operator-signed enrollment token (text and QR code).

The token pins its profile: the sha256 of the profile's canonical ``{name, capabilities}``
(read from ``--profiles-dir``, else the operator configuration's ``profiles_dir``) and
the controller keys the device's manifest may name (``--controllers``, else the
operator configuration's, else this machine's ``controller/ed25519``). At enrollment the
device refuses a manifest beyond either (``manifest_beyond_token``), however it is signed.
"""

from __future__ import annotations

from pathlib import Path

from meshagents import opconfig
from meshagents.catalog import function
from meshagents.trust import tokens
from meshagents.trust.keystore import CONTROLLER_KEY, OPERATOR_KEY, load_signing_key, open_keystore
from meshagents.trust.review import profile_sha256
from meshagents.trust.signing import public_b64


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
    profiles_dir: Path | None = None,
    controllers: list[str] | None = None,
    operator_config: Path | None = None,
) -> dict[str, object]:
    """Create an enrollment token for DEVICE_NAME pinning its profile's hash; optionally as a QR code."""
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
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
    }
    if qr_png is not None:
        out["qr_png"] = str(tokens.qr_png(compact, qr_png))
    if qr_terminal:
        out["qr_terminal"] = tokens.qr_terminal(compact)
    return out
