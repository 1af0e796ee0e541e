"""A systemd unit around ``wg-quick up`` so a mesh interface (hub or device) survives reboot.

wg-quick falls back to wireguard-go by itself when the kernel has no WireGuard, and
the hub's config carries ``PostUp`` lines that restore its nftables table and IPv4
forwarding, so this one oneshot unit brings everything back.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

UNIT_DIR = Path("/etc/systemd/system")


def unit_name(interface: str) -> str:
    return f"meshagents-wg-{interface}.service"


def render_unit(interface: str, conf: Path) -> str:
    return (
        "[Unit]\n"
        f"Description=meshagents WireGuard mesh interface {interface}\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        f"ExecStart=/usr/bin/wg-quick up {conf}\n"
        f"ExecStop=/usr/bin/wg-quick down {conf}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def install_unit(interface: str, conf: Path) -> tuple[str, bool]:
    """Write and enable the unit (not start it: the interface is up already); (name, changed)."""
    name = unit_name(interface)
    path = UNIT_DIR / name
    text = render_unit(interface, conf)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return name, False
    path.write_text(text, encoding="utf-8")
    subprocess.run(["systemctl", "daemon-reload"], check=False, capture_output=True)
    subprocess.run(["systemctl", "enable", name], check=False, capture_output=True)
    return name, True
