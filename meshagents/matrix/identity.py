"""The operator confirms a new Matrix cross-signing identity with the operator key (pure).

When the operator resets cross-signing in Element, the master key the bot and the agents
pinned changes; they refuse the new one (``master_key_changed``) until a statement signed
by the operator ed25519 key names it:

    {"type": "meshagents.matrix_identity.v1", "user_id": "@operator:hub", "master_key": "<b64>",
     "issued_at": 1764620000, "signature": "<b64 ed25519 over the domain-separated payload>"}

(the project's signing scheme, ``trust.signing``). The statement travels as a plain
``org.meshagents.matrix_identity`` event in #operator-approvals: the transport needs no
trust, the signature carries it. A verifier accepts a statement only from a key it
trusts for the operator, for a user that is an operator, and newer than the last one it
accepted for that user (so an old statement cannot pin an old identity back).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.signing import TYPE_MATRIX_IDENTITY, sign_payload, verify_payload

IDENTITY_EVENT = "org.meshagents.matrix_identity"
_MAX_INT = 2**53 - 1


@dataclass(frozen=True)
class IdentityStatement:
    user_id: str
    master_key: str
    issued_at: int
    signed_by: str


def make_statement(
    key: SigningKey, user_id: str, master_key: str, *, now: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_MATRIX_IDENTITY,
        "user_id": user_id,
        "master_key": master_key,
        "issued_at": int(time.time()) if now is None else now,
    }
    body["signature"] = sign_payload(body, key, TYPE_MATRIX_IDENTITY)
    return body


def verify_statement(data: Any, operator_keys: Sequence[str]) -> IdentityStatement:
    """The statement, if signed by one of ``operator_keys``; else ``identity_statement_invalid``."""
    fields = {"type", "user_id", "master_key", "issued_at", "signature"}
    if not isinstance(data, dict) or set(data) != fields:
        raise FnError("identity_statement_invalid", "not a Matrix identity statement (fields)")
    user, master, issued, sig = data["user_id"], data["master_key"], data["issued_at"], data["signature"]
    if (
        data["type"] != TYPE_MATRIX_IDENTITY
        or not isinstance(user, str)
        or not user.startswith("@")
        or not isinstance(master, str)
        or not master
        or isinstance(issued, bool)
        or not isinstance(issued, int)
        or not 0 <= issued <= _MAX_INT
        or not isinstance(sig, str)
    ):
        raise FnError("identity_statement_invalid", "not a Matrix identity statement (values)")
    for key in operator_keys:
        if verify_payload(data, sig, key, TYPE_MATRIX_IDENTITY):
            return IdentityStatement(user, master, issued, key)
    raise FnError("identity_statement_invalid", "not signed by the operator key")
