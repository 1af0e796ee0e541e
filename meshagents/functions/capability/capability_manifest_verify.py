"""capability_manifest_verify: check a manifest's operator signature, expiry and serial."""

from __future__ import annotations

import time
from pathlib import Path

from meshagents.runtime.catalog import function
from meshagents.trust import manifest as manifest_mod
from meshagents.trust.paths import serial_store_path
from meshagents.trust.rotation import current_operator_key


@function(id="capability_manifest_verify", group="capability")
def capability_manifest_verify(
    manifest: Path, operator_key: str | None = None, record_serial: bool = True
) -> dict[str, object]:
    """Verify a signed manifest file; fails with manifest_invalid_signature if anything changed.

    Args:
        manifest: JSON file of the signed manifest to check.
        operator_key: base64 ed25519 operator public key to trust; default: the key pinned on this machine
            (following signed rotations), else the operator key in the key store.
        record_serial: remember the serial per device in <state>/trust/serials.sqlite and refuse one lower
            than seen before (manifest_serial_rollback); --no-record-serial skips the rollback check.
    """
    data = manifest_mod.load_file(manifest)
    key = current_operator_key(operator_key)
    serials = manifest_mod.SerialStore(serial_store_path()) if record_serial else None
    try:
        model = manifest_mod.verify(data, key, now=int(time.time()), serials=serials)
    finally:
        if serials is not None:
            serials.close()
    return {
        "ok": True,
        "device_id": model.device_id,
        "device_name": model.device_name,
        "serial": model.serial,
        "expires_at": model.expires_at,
        "capabilities": [c.name for c in model.capabilities],
        "operator_key": key,
    }
