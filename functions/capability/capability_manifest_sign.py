"""capability_manifest_sign: sign a device's capability manifest with the operator key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from meshagents.catalog import function
from meshagents.errors import FnError
from meshagents.trust import manifest as manifest_mod
from meshagents.trust.canonical import loads_strict
from meshagents.trust.keystore import OPERATOR_KEY, load_signing_key


@function(id="capability_manifest_sign", group="capability", requires=["keystore"])
def capability_manifest_sign(
    manifest: Path, serial: int | None = None, ttl_s: int | None = None
) -> dict[str, Any]:
    """Sign a manifest file with the operator key and print the signed manifest.

    Args:
        manifest: JSON file of the manifest to sign (an unsigned one, or a signed one: its signature is
            replaced and operator_key set to the signing key).
        serial: set the manifest's serial (an integer >= 1 that only grows: a verifier that saw a higher one
            refuses it); default: keep the file's.
        ttl_s: validity in seconds from now (sets issued_at = now, expires_at = now + ttl_s); default: keep
            the file's issued_at and expires_at.
    """
    try:
        data = loads_strict(manifest.read_bytes())
    except OSError as exc:
        raise FnError("manifest_unreadable", f"cannot read {manifest}: {exc.strerror}") from exc
    except FnError as exc:
        raise FnError("manifest_invalid", f"{manifest}: {exc.message}") from exc
    if not isinstance(data, dict):
        raise FnError("manifest_invalid", f"{manifest}: not a JSON object")
    if serial is not None:
        data["serial"] = serial
    if ttl_s is not None:
        now = int(time.time())
        data["issued_at"], data["expires_at"] = now, now + ttl_s
    signed = manifest_mod.sign(data, load_signing_key(OPERATOR_KEY))
    return signed.model_dump(mode="json")
