"""Gather the :class:`~meshagents.enroll.precheck.Facts` of this device (the I/O side of the pre-checks).

Nothing here changes the device: it reads ``/proc``, looks programs up, asks the hub's
public ``/healthz`` for its clock (the ``Date`` header) and runs bubblewrap once with
``true`` — as uid 65534 through ``setpriv`` when we are root, since the agent will run
unprivileged and an unprivileged user namespace is what its sandbox needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from pathlib import Path

from meshagents.bwrap import userns_problem
from meshagents.bwrap import which as _which
from meshagents.enroll.precheck import Facts, Platform


def is_termux() -> bool:
    """As meshagents.wg.client.is_termux (not imported from there: that module pulls in pyroute2)."""
    return "com.termux" in os.environ.get("PREFIX", "") or Path("/data/data/com.termux").is_dir()


def kernel_wireguard() -> bool:
    """The kernel has WireGuard: loaded or built in (/sys/module/wireguard), or a module modprobe would
    load (wg-quick's ``ip link add type wireguard`` loads it). Cheap, unlike opening generic netlink."""
    if Path("/sys/module/wireguard").is_dir():
        return True
    modprobe = _which("modprobe")
    if modprobe is None:
        return False
    res = subprocess.run([modprobe, "--dry-run", "--quiet", "wireguard"], capture_output=True, check=False)
    return res.returncode == 0


def platform() -> Platform:
    if is_termux():
        return "termux"
    if not sys.platform.startswith("linux"):
        return "other"
    try:
        release = Path("/proc/sys/kernel/osrelease").read_text(encoding="ascii").lower()
    except OSError:
        release = ""
    return "wsl" if "microsoft" in release or "wsl" in release else "linux"


def hub_time(base: str, timeout_s: float = 5.0) -> int | None:
    """The hub's clock from its public /healthz ``Date`` header (None if it sent none or is unreachable:
    reachability itself is enrollment_submit's check, with its own error code)."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout_s) as resp:  # noqa: S310 - http(s) checked
            date = resp.headers.get("Date")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not date:
        return None
    try:
        return int(parsedate_to_datetime(date).timestamp())
    except (TypeError, ValueError):
        return None


def writable(path: Path) -> str | None:
    """None when PATH (made if missing) takes a file; else why not. Leaves nothing behind."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return "permission denied"
    try:  # for real (a read-only mount, /proc, an immutable directory): made and removed at once
        if probe == path:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".enroll-probe-"):
                pass
        else:
            os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".enroll-probe-"))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


def interface_taken(interface: str) -> str | None:
    """The link kind holding INTERFACE if it is not WireGuard (a WireGuard link of that name is ours
    to reconfigure: a re-enrollment or a resume)."""
    ip = _which("ip")
    if ip is None:
        return None
    # ip, not /sys/class/net: sysfs shows the namespace it was mounted in, ip this process's
    res = subprocess.run([ip, "-d", "link", "show", interface], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return None
    if "wireguard" in res.stdout or "tun" in res.stdout:
        return None
    words = res.stdout.split("\n")[2].split() if res.stdout.count("\n") >= 2 else []
    return words[0] if words else "non-WireGuard"


def gather(
    *, hub_base: str, dirs: list[Path], interface: str, own_tunnel: bool, now: float | None = None
) -> Facts:
    from meshagents.wg.systemd import has_systemd
    from meshagents.wg.userspace import implementation

    is_root = os.geteuid() == 0
    plat = platform()
    free: dict[str, int] = {}
    unwritable: dict[str, str] = {}
    for d in dirs:
        why = writable(d)
        if why is not None:
            unwritable[str(d)] = why
        else:
            free[str(d)] = free_bytes(d)
    return Facts(
        python=(sys.version_info[0], sys.version_info[1]),
        platform=plat,
        is_root=is_root,
        wg_kernel=own_tunnel and kernel_wireguard(),
        wireguard_go=shutil.which(implementation()) is not None,  # as the userspace backend looks
        wg_quick=_which("wg-quick") is not None,
        ip_tool=_which("ip") is not None,
        bwrap=userns_problem(as_nobody=is_root),
        now=int(time.time() if now is None else now),
        hub_time=hub_time(hub_base),
        free_bytes=free,
        unwritable=unwritable,
        interface_taken=interface_taken(interface) if own_tunnel else None,
        systemd=has_systemd(),
        user_systemd=(not is_root)
        and bool(os.environ.get("XDG_RUNTIME_DIR"))
        and Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "systemd").is_dir(),
    )
