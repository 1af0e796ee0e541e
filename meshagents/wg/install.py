"""wg_install's plan (pure) and its execution: which packages, by which package manager."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagents.errors import FnError


@dataclass(frozen=True)
class Platform:
    id: str  # "debian" | "termux" | other os-release ID
    manager: str | None  # "apt" | "pkg" | None (unsupported)


@dataclass(frozen=True)
class Plan:
    platform: Platform
    kernel_wireguard: bool
    packages: tuple[str, ...]
    missing: tuple[str, ...]
    commands: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform.id,
            "manager": self.platform.manager,
            "kernel_wireguard": self.kernel_wireguard,
            "packages": list(self.packages),
            "missing": list(self.missing),
            "commands": [list(c) for c in self.commands],
        }


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip().strip('"')
    return out


def detect_platform(os_release: str | None, env: dict[str, str]) -> Platform:
    if "com.termux" in env.get("PREFIX", ""):
        return Platform("termux", "pkg")
    info = parse_os_release(os_release or "")
    ids = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    if ids & {"debian", "ubuntu", "raspbian"}:
        return Platform(info.get("ID", "debian"), "apt")
    return Platform(info.get("ID", "unknown") or "unknown", None)


def make_plan(platform: Platform, kernel_wireguard: bool, installed: set[str], hub: bool) -> Plan:
    """Pure: the packages this platform needs and the commands that install the missing ones."""
    if platform.manager is None:
        raise FnError(
            "unsupported_platform",
            f"wg_install knows apt (Debian, Ubuntu, Raspberry Pi OS) and Termux pkg, not {platform.id!r}: "
            "install wireguard-tools (and wireguard-go if the kernel has no WireGuard)"
            " with your package manager",
            platform=platform.id,
        )
    if platform.manager == "pkg":
        pkgs: tuple[str, ...] = ("wireguard-tools",)
    else:
        pkgs = ("wireguard-tools",)
        if not kernel_wireguard:
            pkgs += ("wireguard-go",)
        if hub:
            pkgs += ("nftables", "git")
    missing = tuple(p for p in pkgs if p not in installed)
    commands: tuple[tuple[str, ...], ...] = ()
    if missing and platform.manager == "apt":
        commands = (("apt-get", "update"), ("apt-get", "install", "-y", "--no-install-recommends", *missing))
    elif missing:
        commands = (("pkg", "install", "-y", *missing),)
    return Plan(platform, kernel_wireguard, pkgs, missing, commands)


def installed_packages(manager: str | None, names: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for n in names:
        if manager == "apt":
            proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", n], capture_output=True, text=True)
            if proc.returncode == 0 and proc.stdout.strip().endswith("installed"):
                out.add(n)
        elif shutil.which({"wireguard-tools": "wg"}.get(n, n)):
            out.add(n)
    return out


def current_plan(hub: bool) -> Plan:
    from meshagents.wg.backend import kernel_available

    path = Path("/etc/os-release")
    platform = detect_platform(path.read_text(encoding="utf-8") if path.exists() else None, dict(os.environ))
    kernel = kernel_available()
    every = ("wireguard-tools", "wireguard-go", "nftables", "git")
    return make_plan(platform, kernel, installed_packages(platform.manager, every), hub)


def execute(plan: Plan) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in plan.commands:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise FnError(
                "install_failed", f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
            )
