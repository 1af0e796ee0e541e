"""operator_key_rotate: move trust to a new operator key with a statement signed by old and new."""

from __future__ import annotations

import json
from pathlib import Path

from meshagents.fsutil import write_atomic
from meshagents.runtime.catalog import function
from meshagents.trust import manifest as manifest_mod
from meshagents.trust.keystore import open_keystore
from meshagents.trust.rotation import RotationLog, rotate_operator_key
from meshagents.trust.signing import public_b64


def _write_json(path: Path, data: object) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(path, text, mode=0o666, fsync=False)


@function(id="operator_key_rotate", group="keys", requires=["keystore"])
def operator_key_rotate(reason: str = "", manifests: list[Path] | None = None) -> dict[str, object]:
    """Rotate the operator key; re-sign the given manifest files with the new key and serial + 1.

    Args:
        reason: why the key is rotated (free text, kept in the signed rotation statement).
        manifests: signed manifest files to re-sign in place with the new key, each with serial + 1; default:
            none.
    """
    store = open_keystore()
    statement, new_key = rotate_operator_key(store, reason=reason)
    resigned = []
    for path in manifests or []:
        signed = manifest_mod.resign(manifest_mod.load_file(path), new_key)
        _write_json(path, signed.model_dump(mode="json"))
        resigned.append({"path": str(path), "device_id": signed.device_id, "serial": signed.serial})
    return {
        "old_key": statement.old_key,
        "new_key": public_b64(new_key),
        "statement": statement.model_dump(mode="json"),
        "rotations_file": str(RotationLog().path),
        "resigned": resigned,
    }
