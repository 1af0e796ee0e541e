"""Request envelopes: the controller signs, the device checks in a fixed order.

Public API::

    sign(key, *, device_id, capability, args, ttl_s=300, now=None, approval=None,
         request_id=None, nonce=None) -> Envelope
    verify(envelope: dict | Envelope, manifest: Manifest, nonce_store: NonceStore, *,
           now=None, skew_s=30, max_lifetime_s=3600, approval_check=None,
           consume=False, resolve=True) -> VerifyResult
    VerifyResult(status, reason, envelope, decision)   # .ok; status as below
    args_digest(args) -> str          # sha256 hex of canonical args (what the audit log keeps)

The approval binding and the device's approval check live in
``meshagents.trust.approval`` (one definition for the bot and the device).

Check order and status codes (the first failure wins):

1. ``rejected_signature``  signed by a key listed in ``manifest.controllers``, over this content
2. ``rejected_device``     ``device_id`` is the manifest's
3. ``rejected_expired``    ``issued_at - skew <= now <= expires_at + skew``, lifetime <= max
4. ``rejected_nonce``      nonce never accepted before (persistent store)
5. ``rejected_capability`` capability in the (unexpired) manifest
6. ``rejected_args``       arguments within the capability's constraints
7. ``rejected_approval``   ``requires_approval``: ``approval`` set and ``approval_check`` says yes

Step 4 asks the store's memory (``NonceStore.known``: a hit is a nonce certainly used;
no SQL on the verify path), and the durable insert stays the authority: with
``consume=True`` here, or, on the device, ``AuditLog.append_intent(nonce=...)``. A replay
of a nonce another connection committed after this store loaded is refused there, with
``rejected_nonce`` (docs/protocol.md, *Nonces*).

``verify`` never writes the nonce store unless ``consume=True``. A device agent that
writes an audit log passes the nonce to ``AuditLog.append_intent(nonce=...)``, which
records nonce and intent in one transaction (a concurrent replay then fails there
with ``rejected_nonce``). ``approval_check(envelope, manifest)`` is the device's own
look-up of the approval event, judged by ``meshagents.trust.approval.check_approval``;
without one, approvals fail closed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey
from pydantic import ValidationError

from meshagents.errors import FnError
from meshagents.trust import approval
from meshagents.trust.manifest import Decision, decide
from meshagents.trust.models import Envelope, Manifest, parse, parse_exact
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import TYPE_ENVELOPE, public_b64, sign_payload, verify_payload

DEFAULT_SKEW_S = 30
DEFAULT_TTL_S = 300
DEFAULT_MAX_LIFETIME_S = 3600

ApprovalCheck = Callable[[Envelope, Manifest], bool]

STATUSES = (
    "ok",
    "rejected_signature",
    "rejected_device",
    "rejected_expired",
    "rejected_nonce",
    "rejected_capability",
    "rejected_args",
    "rejected_approval",
)


@dataclass(frozen=True)
class VerifyResult:
    status: str
    reason: str
    envelope: Envelope | None = None
    decision: Decision | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def _accepted(cls, env: Envelope, decision: Decision) -> VerifyResult:
        """The "ok" result, every field set, without the frozen dataclass's per-field
        ``object.__setattr__`` (the common case of every command; equal to
        ``VerifyResult("ok", "accepted", env, decision)``)."""
        res = object.__new__(cls)
        res.__dict__.update(status="ok", reason="accepted", envelope=env, decision=decision)
        return res


def args_digest(args: Any) -> str:
    return approval.args_digest(args)


def sign(
    key: SigningKey,
    *,
    device_id: str,
    capability: str,
    args: dict[str, Any],
    ttl_s: int = DEFAULT_TTL_S,
    now: int | None = None,
    approval: str | None = None,
    request_id: str | None = None,
    nonce: str | None = None,
) -> Envelope:
    """A signed envelope from the controller key ``key``."""
    issued = int(time.time()) if now is None else now
    body: dict[str, Any] = {
        "type": TYPE_ENVELOPE,
        "request_id": request_id or secrets.token_hex(8),
        "device_id": device_id,
        "capability": capability,
        "args": args,
        "nonce": nonce or secrets.token_urlsafe(18),
        "issued_at": issued,
        "expires_at": issued + ttl_s,
        "approval": approval,
        "controller": public_b64(key),
    }
    body = parse(Envelope, body, code="envelope_invalid").model_dump(mode="json")
    body.pop("signature", None)
    body["signature"] = sign_payload(body, key, TYPE_ENVELOPE)
    return parse(Envelope, body, code="envelope_invalid")


_ENVELOPE_FIELDS = len(Envelope.model_fields)


def _parse_signed(raw: dict[str, Any]) -> Envelope:
    """``parse_exact(Envelope, raw, deep=False)``, its common case without the generic
    steps: a document with every field (the Envelope has no additive ones) validates once;
    anything else takes ``parse_exact`` for its exact refusal."""
    if len(raw) == _ENVELOPE_FIELDS:
        try:
            return Envelope.model_validate(raw)
        except ValidationError:
            pass
    return parse_exact(Envelope, raw, code="envelope_invalid", deep=False)


def verify(
    envelope: dict[str, Any] | Envelope,
    manifest: Manifest,
    nonce_store: NonceStore,
    *,
    now: int | None = None,
    skew_s: int = DEFAULT_SKEW_S,
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S,
    approval_check: ApprovalCheck | None = None,
    consume: bool = False,
    resolve: bool = True,
) -> VerifyResult:
    """Check ``envelope`` against a verified ``manifest``; never raises for a bad envelope."""
    now = int(time.time()) if now is None else now
    raw = envelope.model_dump(mode="json") if isinstance(envelope, Envelope) else envelope
    if not isinstance(raw, dict):
        return VerifyResult("rejected_signature", "envelope is not an object")
    controller = raw.get("controller")
    signature = raw.get("signature")
    if not isinstance(controller, str) or controller not in manifest.controllers:
        return VerifyResult("rejected_signature", "not signed by a controller listed in the manifest")
    if not isinstance(signature, str) or not verify_payload(raw, signature, controller, TYPE_ENVELOPE):
        return VerifyResult("rejected_signature", "signature does not match the envelope's content")
    try:
        env = _parse_signed(raw)
    except FnError as exc:
        return VerifyResult("rejected_signature", f"malformed envelope: {exc.message}")

    if env.device_id != manifest.device_id:
        reason = f"envelope is for {env.device_id}, not {manifest.device_id}"
        return VerifyResult("rejected_device", reason, env)

    if env.expires_at < env.issued_at or env.expires_at - env.issued_at > max_lifetime_s:
        return VerifyResult("rejected_expired", f"lifetime must be 0..{max_lifetime_s} s", env)
    if now > env.expires_at + skew_s:
        return VerifyResult("rejected_expired", f"expired at {env.expires_at} (now {now})", env)
    if env.issued_at > now + skew_s:
        return VerifyResult("rejected_expired", f"issued in the future ({env.issued_at}, now {now})", env)

    # In memory (no SQL): a hit is certainly a replay; a miss is settled by the durable
    # insert (consume below, or the agent's AuditLog.append_intent), which is the authority.
    if nonce_store.known(env.nonce):
        return VerifyResult("rejected_nonce", "nonce already used (replay)", env)

    # The signature check already put the whole envelope, args included, through canonical_bytes.
    decision = decide(manifest, env.capability, env.args, now=now, resolve=resolve, _args_canonical=True)
    if not decision.allowed:
        return VerifyResult(decision.code, decision.reason, env, decision)

    if decision.requires_approval:
        if not env.approval:
            return VerifyResult("rejected_approval", f"{env.capability} requires an approval", env, decision)
        if approval_check is None:
            return VerifyResult("rejected_approval", "no approval checker on this verifier", env, decision)
        try:
            approved = approval_check(env, manifest)
        except Exception as exc:  # a failing look-up must refuse, not crash the agent
            return VerifyResult("rejected_approval", f"approval check failed: {exc}", env, decision)
        if not approved:
            return VerifyResult("rejected_approval", f"approval {env.approval} is not valid", env, decision)

    if consume:
        try:
            nonce_store.consume(env.nonce, env.expires_at + skew_s, now=now)
        except FnError as exc:
            return VerifyResult(exc.code, exc.message, env, decision)
    return VerifyResult._accepted(env, decision)


def keep_until(env: Envelope, skew_s: int = DEFAULT_SKEW_S) -> int:
    """How long the nonce of ``env`` must be remembered."""
    return env.expires_at + skew_s
