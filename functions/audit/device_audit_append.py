"""device_audit_append: append an intent, outcome or event to a device's audit hash chain."""

from __future__ import annotations

from typing import Any, Literal

from meshagents.catalog import function
from meshagents.trust.audit import AuditLog
from meshagents.trust.canonical import canonical_bytes, sha256_hex
from meshagents.trust.keystore import DEVICE_KEY, load_signing_key
from meshagents.trust.paths import audit_path


@function(id="device_audit_append", group="audit")
def device_audit_append(
    device: str,
    kind: Literal["intent", "outcome", "event"],
    status: str,
    request_id: str = "",
    capability: str = "",
    args: dict[str, Any] | None = None,
    detail: str = "",
    checkpoint: bool = False,
) -> dict[str, Any]:
    """Append one durable entry to DEVICE's audit chain; --checkpoint signs the head (checkpoint file)."""
    digest = "" if args is None else sha256_hex(canonical_bytes(args))
    with AuditLog(audit_path(device), device_id=device) as log:
        entry = log.append(kind, request_id, capability, digest, status, detail=detail)
        out: dict[str, Any] = {"device": device, "entry": entry.model_dump(mode="json")}
        if checkpoint:
            out["checkpoint"] = log.seal(load_signing_key(DEVICE_KEY), force=True)
    return out
