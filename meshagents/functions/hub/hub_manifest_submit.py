"""hub_manifest_submit: hand the hub a manifest the operator signed on their own machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents import hubctl
from meshagents.errors import FnError
from meshagents.runtime.catalog import function


@function(id="hub_manifest_submit", group="hub")
def hub_manifest_submit(
    device_id: str, manifest: dict[str, Any], config: Path = Path("/etc/meshagents/wg_hub.toml")
) -> dict[str, Any]:
    """Post a signed manifest (JSON) for DEVICE_ID; the hub checks it, then serves it to the device.

    Args:
        device_id: id of the device the manifest is for, as hub_manifests_pending lists it.
        manifest: the signed manifest as JSON text (what capability_manifest_sign prints), e.g. --manifest
            "$(cat signed.json)".
        config: the hub service's TOML config (written by hub_config_write): its ports, state directory and
            the key store name of its operator API token.
    """
    if not isinstance(manifest, dict) or "signature" not in manifest:
        raise FnError("manifest_unsigned", "no signature: sign it with capability_manifest_sign first")
    result = hubctl.request(hubctl.read_config(config), "POST", f"/api/manifests/{device_id}", manifest)
    return result if isinstance(result, dict) else {"result": result}
