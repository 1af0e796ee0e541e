"""wg_client_config: a device's wg-quick config from the hub, with a QR code for the mobile app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.catalog import function


@function(id="wg_client_config", group="wg")
def wg_client_config(
    peer: str,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    endpoint: str | None = None,
    private_key_file: Path | None = None,
    dns: list[str] | None = None,
    out: Path | None = None,
    qr_png: Path | None = None,
    qr_terminal: bool = False,
) -> dict[str, Any]:
    """Render a client config (keepalive 25, mesh AllowedIPs); the private key only from a local file."""
    from meshagents.wg.client import client_config

    return client_config(
        who=peer,
        interface=interface,
        config_dir=config_dir,
        endpoint=endpoint,
        private_key_file=private_key_file,
        dns=tuple(dns or ()),
        out=out,
        png=qr_png,
        terminal_qr=qr_terminal,
    )
