"""device_audit_verify_chain: verify one device's audit hash chain (or every device's)."""

from __future__ import annotations

import dataclasses
from typing import Any

from meshagents.catalog import function
from meshagents.errors import FnError, UsageError
from meshagents.trust.audit import AuditLog
from meshagents.trust.keystore import DEVICE_KEY, load_signing_key, open_keystore
from meshagents.trust.paths import audit_devices, audit_path
from meshagents.trust.signing import public_b64


def _local_device_key() -> str | None:
    try:
        return public_b64(load_signing_key(DEVICE_KEY, open_keystore()))
    except FnError:
        return None


@function(id="device_audit_verify_chain", group="audit")
def device_audit_verify_chain(
    device: str | None = None, all: bool = False, device_key: str | None = None
) -> dict[str, Any]:
    """Verify audit chains (--device NAME or --all): OK, or the first bad seq and its kind.

    Args:
        device: device name whose chain to verify (<state>/audit/<device>.sqlite); give this or all.
        all: verify every device's chain under <state>/audit; give this or device.
        device_key: base64 ed25519 public key the checkpoints must be signed by; default: this machine's
            device key if the key store has one, else the key each checkpoint names (which shows the chain
            is intact, not who signed it).
    """
    if bool(device) == bool(all):
        raise UsageError("give exactly one of --device NAME or --all")
    names = audit_devices() if all else [str(device)]
    pinned = device_key or _local_device_key()
    reports: dict[str, Any] = {}
    for name in names:
        path = audit_path(name)
        if not path.exists():
            raise FnError("audit_missing", f"no audit store for device {name!r}", path=str(path))
        with AuditLog(path) as log:
            report = log.verify(pinned)
        reports[name] = dataclasses.asdict(report)
    bad = {n: r for n, r in reports.items() if not r["ok"]}
    if bad:
        name, first = next(iter(bad.items()))
        raise FnError(
            "audit_chain_broken",
            f"{name}: {first['problem']} at seq {first['first_bad_seq']}: {first['reason']}",
            devices=reports,
        )
    return {"ok": True, "device_key_pinned": pinned is not None, "devices": reports}
