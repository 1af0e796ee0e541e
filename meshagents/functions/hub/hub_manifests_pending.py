"""hub_manifests_pending: manifests waiting for the operator's offline signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents import hubctl
from meshagents.runtime.catalog import function


@function(id="hub_manifests_pending", group="hub")
def hub_manifests_pending(config: Path = Path("/etc/meshagents/wg_hub.toml")) -> list[dict[str, Any]]:
    """List the unsigned manifests the hub holds (manifest_signing = "offline"), from its loopback API.

    Args:
        config: the hub service's TOML config (written by hub_config_write): its ports, state directory and
            the key store name of its operator API token.
    """
    result = hubctl.request(hubctl.read_config(config), "GET", "/api/manifests/pending")
    return list(result.get("pending", [])) if isinstance(result, dict) else []
