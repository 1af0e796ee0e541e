"""A device's signed request to leave the mesh: the hub revokes the peer it names.

    request(device_id, key, now=None) -> dict       # {"type", "device_id", "issued_at", "nonce", "signature"}
    check(body, device_id, device_key, now=None)    # FnError leave_invalid / leave_signature_invalid /
                                                    # leave_expired

Signed with the device key (the one in the device's manifest, which the hub keeps), so
nobody but the device itself can take it off the mesh this way; the operator's own
``/api/peers/<id>/revoke`` stays the kill switch. A request is good for
:data:`MAX_AGE_S` either side of the hub's clock; replaying one is harmless, because a
revoked peer is never re-admitted and a second leave finds no enrolled device.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.signing import TYPE_LEAVE, sign_payload, verify_payload

MAX_AGE_S = 300
FIELDS = {"type", "device_id", "issued_at", "nonce", "signature"}


def request(device_id: str, key: SigningKey, now: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_LEAVE,
        "device_id": device_id,
        "issued_at": int(time.time()) if now is None else now,
        "nonce": secrets.token_urlsafe(16),
    }
    body["signature"] = sign_payload(body, key, TYPE_LEAVE)
    return body


def check(body: Any, device_id: str, device_key: str, now: int | None = None) -> None:
    if not isinstance(body, dict) or set(body) != FIELDS or body.get("type") != TYPE_LEAVE:
        raise FnError("leave_invalid", f"a leave request is exactly {sorted(FIELDS)} with type {TYPE_LEAVE}")
    if body["device_id"] != device_id:
        raise FnError("leave_invalid", f"the request is for {body['device_id']!r}, not {device_id!r}")
    issued = body["issued_at"]
    if not isinstance(issued, int) or isinstance(issued, bool):
        raise FnError("leave_invalid", "issued_at must be an integer")
    if not isinstance(body["signature"], str) or not verify_payload(
        body, body["signature"], device_key, TYPE_LEAVE
    ):
        raise FnError("leave_signature_invalid", "not signed by the device key of this device's manifest")
    now = int(time.time()) if now is None else now
    if abs(now - issued) > MAX_AGE_S:
        raise FnError(
            "leave_expired", f"issued_at is {now - issued:+d} s off the hub's clock (max {MAX_AGE_S})"
        )
