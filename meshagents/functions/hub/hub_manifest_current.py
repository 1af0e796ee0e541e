"""hub_manifest_current: the signed manifest the hub currently serves a device (for a re-issue)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents import hubctl
from meshagents.errors import FnError
from meshagents.runtime.catalog import function


@function(id="hub_manifest_current", group="hub")
def hub_manifest_current(
    device_id: str, config: Path = Path("/etc/meshagents/wg_hub.toml")
) -> dict[str, Any]:
    """Print DEVICE_ID's current signed manifest from the hub's loopback API (verify it before use).

    Args:
        device_id: the enrolled device whose manifest to print.
        config: the hub's config file on this machine (its loopback operator API and token).
    """
    result = hubctl.request(hubctl.read_config(config), "GET", f"/api/manifest/{device_id}")
    manifest = result.get("manifest") if isinstance(result, dict) else None
    if not isinstance(manifest, dict):
        raise FnError("device_unknown", f"the hub serves no manifest of {device_id!r}")
    return manifest
