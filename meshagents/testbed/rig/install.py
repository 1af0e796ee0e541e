"""The Debian packages the demo needs, installed only when missing (as .ci/run does).

missing_packages(which=shutil.which, exists=os.path.exists) -> ["wireguard-go", ...]   # pure
ensure_packages(log)     # apt-get install --no-install-recommends of the missing ones
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from meshagents.errors import FnError

#: package -> a file or program that shows it is installed
NEEDED: dict[str, str] = {
    "wireguard-go": "wireguard-go",
    "wireguard-tools": "wg",
    "iproute2": "ip",
    "util-linux": "nsenter",
    "nftables": "nft",
    "git": "git",
    "bubblewrap": "bwrap",
    "docker.io": "dockerd",
    "busybox-static": "/bin/busybox",
    "iputils-ping": "ping",
}


def missing_packages(
    which: Callable[[str], str | None] = shutil.which, exists: Callable[[str], bool] = os.path.exists
) -> list[str]:
    out = []
    for package, probe in NEEDED.items():
        present = exists(probe) if probe.startswith("/") else which(probe) is not None
        if not present:
            out.append(package)
    return out


def ensure_packages(log: Callable[[str], None], *, docker: bool = True) -> list[str]:
    """Install what is missing; returns the packages installed. Needs root and apt-get."""
    missing = [p for p in missing_packages() if docker or p not in ("docker.io", "busybox-static")]
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise FnError("missing_packages", f"install these first: {' '.join(missing)} (no apt-get here)")
    log(f"demo: installing {' '.join(missing)} (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise FnError("install_failed", f"{' '.join(argv[:3])}: {proc.stderr.strip()[-800:]}")
    return missing
