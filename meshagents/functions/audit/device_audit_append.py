"""device_audit_append: append an intent, outcome or event to a device's audit hash chain."""

from __future__ import annotations

from typing import Any, Literal

from meshagents.runtime.catalog import function
from meshagents.trust.approval import args_digest
from meshagents.trust.audit import AuditLog
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
    """Append one durable entry to DEVICE's audit chain; --checkpoint signs the head (checkpoint file).

    Args:
        device: device name whose chain to append to (<state>/audit/<device>.sqlite): 1-128 of A-Z a-z 0-9 _ .
            -, starting with a letter or digit; the chain is created on first use.
        kind: intent (a request is about to run), outcome (how a request ended) or event (anything else: a
            refusal, a key change, a restart).
        status: the entry's status text, e.g. started, ok, error, timeout, refused.
        request_id: id of the request the entry is about (links an intent to its outcome); default: none.
        capability: capability name the entry is about, e.g. shell.exec.ls; default: none.
        args: the request's arguments as a JSON object; only the sha256 of their canonical JSON is stored.
            Default: no digest.
        detail: free text for people reading the log (not interpreted).
        checkpoint: after appending, sign the chain head with this machine's device key (device/ed25519, see
            device_key_init) into the append-only checkpoint file beside the chain
            (<state>/audit/<device>.checkpoints.jsonl).
    """
    digest = "" if args is None else args_digest(args)
    with AuditLog(audit_path(device), device_id=device) as log:
        entry = log.append(kind, request_id, capability, digest, status, detail=detail)
        out: dict[str, Any] = {"device": device, "entry": entry.model_dump(mode="json")}
        if checkpoint:
            out["checkpoint"] = log.seal(load_signing_key(DEVICE_KEY), force=True)
    return out
