"""Client side: a device's wg-quick config (+ QR code), and installing it on the device.

The device's private key never leaves the device: the hub renders the config with a
``PrivateKey = <device private key>`` placeholder unless it is given a key file on the
machine where the config will be used (the device itself); ``install`` fills the
placeholder from the device's own key file.
"""

from __future__ import annotations

import io
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.wg import links
from meshagents.wg.backend import BackendName, kernel_available, open_backend
from meshagents.wg.config import InterfaceSection, PeerSection, WgQuickConfig, parse, render
from meshagents.wg.context import WgPaths
from meshagents.wg.hub import public_of, spec_of
from meshagents.wg.keys import check_key
from meshagents.wg.netns import check_netns
from meshagents.wg.peers import find
from meshagents.wg.systemd import has_systemd, install_unit

PLACEHOLDER = "<device private key>"
KEEPALIVE = 25
CLIENT_HEADER = "# meshagents mesh client config. Keep it 0600; the private key is the device's own."


def read_key_file(path: Path, what: str) -> str:
    try:
        return check_key(path.read_text(encoding="utf-8"), what)
    except OSError as exc:
        raise FnError("key_file_unreadable", f"cannot read {what} file {path}: {exc.strerror}") from exc


def render_client(
    *,
    private_key: str | None,
    address: str,
    prefixlen: int,
    hub_public_key: str,
    endpoint: str,
    mesh_subnet: str,
    preshared_key: str | None,
    dns: tuple[str, ...] = (),
    keepalive: int = KEEPALIVE,
) -> str:
    cfg = WgQuickConfig(
        interface=InterfaceSection(
            private_key=private_key or PLACEHOLDER, addresses=(f"{address}/{prefixlen}",), dns=dns
        ),
        peers=(
            PeerSection(
                public_key=hub_public_key,
                name="hub",
                preshared_key=preshared_key,
                endpoint=endpoint,
                allowed_ips=(mesh_subnet,),
                persistent_keepalive=keepalive,
            ),
        ),
    )
    return render(cfg, header=CLIENT_HEADER)


def qr_png(text: str, path: Path) -> None:
    import qrcode
    import qrcode.image.pure

    img = qrcode.make(text, image_factory=qrcode.image.pure.PyPNGImage)
    with path.open("wb") as fh:
        img.save(fh)


def qr_terminal(text: str) -> str:
    import qrcode

    qr = qrcode.QRCode(border=1)
    qr.add_data(text)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out)
    return out.getvalue()


def client_config(
    *,
    who: str,
    interface: str,
    config_dir: Path,
    endpoint: str | None,
    private_key_file: Path | None,
    dns: tuple[str, ...] = (),
    out: Path | None = None,
    png: Path | None = None,
    terminal_qr: bool = False,
) -> dict[str, Any]:
    paths = WgPaths(interface, config_dir)
    cfg = paths.require_config()
    with paths.ledger() as led:
        rec = find(led, who)
        ep = endpoint or led.get_meta("endpoint")
    if rec.status == "revoked":
        raise FnError("peer_revoked", f"{rec.name} was revoked")
    if rec.status != "active":
        raise FnError("peer_unknown", f"{rec.name} is not an active peer (status {rec.status})")
    if not ep:
        raise FnError(
            "endpoint_unknown", "no hub endpoint: pass --endpoint HOST:PORT (or set it in wg_hub_setup)"
        )
    if ":" not in ep:
        ep = f"{ep}:{cfg.interface.listen_port or 51820}"
    if not cfg.interface.private_key or not cfg.interface.addresses:
        raise FnError("hub_not_configured", f"{paths.conf} lacks PrivateKey or Address")
    hub_if = ipaddress.IPv4Interface(cfg.interface.addresses[0])
    private = read_key_file(private_key_file, "device private key") if private_key_file else None
    if private is not None and public_of(private) != rec.public_key:
        raise FnError("key_mismatch", f"that private key is not the one of {rec.name}")
    section = cfg.peer(rec.public_key)
    text = render_client(
        private_key=private,
        address=rec.address,
        prefixlen=hub_if.network.prefixlen,
        hub_public_key=public_of(cfg.interface.private_key),
        endpoint=ep,
        mesh_subnet=str(hub_if.network),
        preshared_key=section.preshared_key if section else None,
        dns=dns,
    )
    result: dict[str, Any] = {
        "name": rec.name,
        "address": rec.address,
        "endpoint": ep,
        "has_private_key": private is not None,
        "config": text,
    }
    if out is not None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        result["config_file"] = str(out)
    if png is not None:
        qr_png(text, png)
        png.chmod(0o600)
        result["qr_png"] = str(png)
    if terminal_qr:
        result["qr_terminal"] = qr_terminal(text)
    return result


def is_termux() -> bool:
    return "com.termux" in os.environ.get("PREFIX", "") or Path("/data/data/com.termux").is_dir()


def install(
    *,
    config_text: str,
    interface: str,
    config_dir: Path,
    netns: str | None,
    private_key_file: Path | None,
    backend: BackendName = "auto",
    systemd: bool = True,
) -> dict[str, Any]:
    netns = netns or None
    check_netns(netns)
    cfg = parse(config_text)
    priv = cfg.interface.private_key
    if priv is None or priv == PLACEHOLDER:
        if private_key_file is None:
            raise FnError("private_key_missing", "the config has no private key: pass --private-key-file")
        priv = read_key_file(private_key_file, "device private key")
    check_key(priv, "device private key")
    if not cfg.interface.addresses or not cfg.peers:
        raise FnError("config_invalid", "a client config needs an Address and a [Peer]")
    cfg = WgQuickConfig(
        interface=InterfaceSection(**{**cfg.interface.__dict__, "private_key": priv}), peers=cfg.peers
    )
    paths = WgPaths(interface, config_dir)
    config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.repo().write(paths.conf_name, render(cfg, header=CLIENT_HEADER), mode=0o600)
    notes: list[str] = []
    if is_termux():
        notes.append(
            "Termux: no TUN without root; import the config in the WireGuard Android app"
            " (wg_client_config --qr-terminal or --qr-png)."
        )
    use_wg_quick = (
        netns is None and backend != "userspace" and kernel_available() and shutil.which("wg-quick")
    )
    be = open_backend(interface, netns, backend)
    if use_wg_quick and not be.exists():
        subprocess.run(["wg-quick", "up", str(paths.conf)], check=True, capture_output=True)
        method = "wg-quick"
    else:
        be.create()
        be.configure(
            private_key=priv,
            listen_port=cfg.interface.listen_port,
            peers=[spec_of(p) for p in cfg.peers],
            replace_peers=True,
        )
        routes = [ip for p in cfg.peers for ip in p.allowed_ips]
        links.ensure_up(interface, cfg.interface.addresses[0], routes, netns)
        method = f"{be.name}+pyroute2"
    unit: str | None = None
    if systemd and netns is None and has_systemd():
        unit, _ = install_unit(interface, paths.conf)
    return {
        "interface": interface,
        "netns": netns,
        "config": str(paths.conf),
        "method": method,
        "address": cfg.interface.addresses[0],
        "systemd_unit": unit,
        "notes": notes,
    }
