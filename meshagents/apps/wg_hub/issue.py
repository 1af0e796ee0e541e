"""The manifest a device gets at enrollment (pure: no I/O, no keys).

``build_manifest`` fills the trust core's ``Manifest`` from the token's profile, the
device's own public keys (made on the device), the address the ledger allocated and
the hub's facts (controllers, approvers, bot users, Matrix server name). Signing is the
caller's: ``meshagents.trust.manifest.sign(body, key)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def matrix_user(device_name: str, server_name: str) -> str:
    return f"@dev-{device_name}:{server_name}"


def build_manifest(
    *,
    device_name: str,
    device_key: str,
    wg_public_key: str,
    mesh_address: str,
    profile: dict[str, Any],
    controllers: Sequence[str],
    approvers: Sequence[str],
    server_name: str,
    serial: int,
    now: int,
    default_ttl_s: int,
    operator_key: str,
    bot_users: Sequence[str] = (),
) -> dict[str, Any]:
    ttl = profile.get("ttl_s") or default_ttl_s
    return {
        "type": "meshagents.manifest.v1",
        "device_id": device_name,
        "device_name": device_name,
        "device_key": device_key,
        "wg_public_key": wg_public_key,
        "mesh_address": mesh_address,
        "matrix_user": matrix_user(device_name, server_name),
        "approvers": list(approvers),
        "controllers": list(dict.fromkeys(controllers)),
        "capabilities": list(profile["capabilities"]),
        "serial": serial,
        "issued_at": now,
        "expires_at": now + int(ttl),
        "operator_key": operator_key,
        # Only bots named here may post approval requests the device honours.
        **({"bot_users": list(dict.fromkeys(bot_users))} if bot_users else {}),
    }
