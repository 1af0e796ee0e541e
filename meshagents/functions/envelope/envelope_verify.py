"""envelope_verify: check a request envelope against a device's signed manifest."""

from __future__ import annotations

import time
from pathlib import Path

from meshagents.errors import FnError
from meshagents.runtime.catalog import function
from meshagents.trust import envelope as envelope_mod
from meshagents.trust import manifest as manifest_mod
from meshagents.trust.audit import AuditLog
from meshagents.trust.canonical import loads_strict
from meshagents.trust.paths import audit_path
from meshagents.trust.rotation import current_operator_key


@function(id="envelope_verify", group="envelope")
def envelope_verify(
    envelope: Path,
    manifest: Path,
    operator_key: str | None = None,
    consume: bool = True,
    skew_s: int = 30,
) -> dict[str, object]:
    """Verify an envelope file; fails with its status code (rejected_signature, ..., rejected_approval).

    Args:
        envelope: JSON file of the signed envelope (as envelope_sign prints it).
        manifest: JSON file of the target device's signed manifest; it is verified first (not against stored
            serials).
        operator_key: base64 ed25519 operator public key the manifest must be signed by; default: the key
            pinned on this machine (following signed rotations), else the operator key in the key store.
        consume: use up the envelope's nonce in the device's store (<state>/audit/<device_name>.sqlite), so
            the same envelope is then rejected_nonce; --no-consume only checks.
        skew_s: clock difference tolerated on issued_at and expires_at, in seconds.
    """
    now = int(time.time())
    man = manifest_mod.verify(manifest_mod.load_file(manifest), current_operator_key(operator_key), now=now)
    try:
        raw = loads_strict(envelope.read_bytes())
    except OSError as exc:
        raise FnError("envelope_unreadable", f"cannot read {envelope}: {exc.strerror}") from exc
    except FnError as exc:
        raise FnError("rejected_signature", f"{envelope}: {exc.message}") from exc
    # The device's nonce store is its audit database, as on the device itself.
    with AuditLog(audit_path(man.device_name), device_id=man.device_id) as log:
        result = envelope_mod.verify(raw, man, log.nonces, now=now, skew_s=skew_s, consume=consume)
    if not result.ok:
        raise FnError(result.status, result.reason)
    assert result.envelope is not None and result.decision is not None
    return {
        "status": result.status,
        "request_id": result.envelope.request_id,
        "capability": result.envelope.capability,
        "argv": result.decision.argv,
        "requires_approval": result.decision.requires_approval,
        "timeout_s": result.decision.timeout_s,
        "output_cap_bytes": result.decision.output_cap_bytes,
    }
