"""wg_client_config: a device's wg-quick config from the hub, with a QR code for the mobile app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


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
    """Render a client config (keepalive 25, mesh AllowedIPs); the private key only from a local file.

    Args:
        peer: the device to render the config for: its base64 WireGuard public key or its device name; it must
            be an active peer in the hub's ledger.
        interface: see args.toml [hub]
        config_dir: see args.toml [hub]
        endpoint: the hub's WireGuard endpoint as devices reach it, host:port (e.g. vps.example.org:51820);
            without a port the hub's ListenPort is used; default: the endpoint wg_hub_setup recorded.
        private_key_file: file with the device's own base64 WireGuard private key, only on the device itself;
            it must match the peer's public key. Default: the config carries the placeholder '<device private
            key>', which wg_client_install fills in on the device.
        dns: DNS server addresses for the config's DNS line (e.g. 10.42.0.1); default: no DNS line.
        out: also write the config to this file (mode 0600); default: only printed (the config field).
        qr_png: also write the config as a QR code PNG to this file (0600), to import into the WireGuard
            mobile app; useful with private_key_file, since a placeholder key cannot be imported.
        qr_terminal: also print the config as a text QR code (the qr_terminal field).
    """
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
