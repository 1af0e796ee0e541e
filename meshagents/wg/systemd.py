"""A systemd unit around ``wg-quick up`` so a mesh interface (hub or device) survives reboot.

wg-quick falls back to wireguard-go by itself when the kernel has no WireGuard, and
the hub's config carries ``PostUp`` lines that restore its nftables table and IPv4
forwarding, so this one oneshot unit brings everything back.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from meshagents.errors import FnError

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


def is_active(name: str) -> bool:
    res = subprocess.run(["systemctl", "is-active", name], capture_output=True, text=True, check=False)
    return res.stdout.strip() == "active"


def hand_to_unit(interface: str, conf: Path) -> bool:
    """Let the unit run the interface from now on; True when it had to be started.

    The caller brought the interface up directly. Left like that, the oneshot unit is
    'failed' the first time something pulls it in (the hub's unit wants it): ``wg-quick up``
    finds the interface there. So, unless the unit is active already, the interface goes
    down and the unit brings it up (the device side does the same, meshagents/enroll). A
    re-run with the unit active touches nothing."""
    name = unit_name(interface)
    if is_active(name):
        return False
    subprocess.run(["wg-quick", "down", str(conf)], capture_output=True, check=False)
    res = subprocess.run(["systemctl", "enable", "--now", name], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise FnError("wg_unit_failed", f"systemctl enable --now {name}: {res.stderr.strip()[:300]}")
    return True
