"""What must hold on this device before the one-use token is spent — a pure judgement.

    facts = Facts(...)                      # gathered by meshagents.enroll.probe (the I/O)
    problems = check(facts, Needs(...))     # [] or the Problems, each with a stable code

Every check here is about the device itself, so that a missing prerequisite stops
enrollment while the token is still good: the operator fixes the device and runs the
same command again with the same token. The codes (``precheck_*``) are the contract;
``meshagents enroll`` exits with :data:`EXIT_PRECHECK` when any is found.

- ``precheck_python``      Python older than :data:`MIN_PYTHON`
- ``precheck_wireguard``   neither the kernel's WireGuard nor wireguard-go (not asked on
  Termux: the WireGuard app owns the tunnel there)
- ``precheck_wg_tools``    no ``wg-quick``/``ip`` where the tunnel is ours to bring up
- ``precheck_bwrap``       no bubblewrap, or it cannot make an unprivileged user namespace,
  and ``sandbox: weak`` was not chosen
- ``precheck_clock``       the clock is off by more than the skew (against the hub's
  ``Date`` when it sent one, and never before the token's ``issued_at`` - skew)
- ``precheck_token_expired`` the token's ``expires_at`` has passed by this clock
- ``precheck_disk``        less than :data:`MIN_FREE_BYTES` free where state goes
- ``precheck_write``       a target directory cannot be written
- ``precheck_interface``   the interface name is taken by a link that is not ours
- ``precheck_service``     the service kind asked for cannot be installed here
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MIN_PYTHON = (3, 11)
MIN_FREE_BYTES = 64 * 1024 * 1024  # the agent's state, audit chain and Matrix store, with room to grow
DEFAULT_SKEW_S = 30  # the envelope skew the agent applies (meshagents.trust.envelope)
EXIT_PRECHECK = 3  # distinct from 1 (a failure after the token was spent) and 2 (bad usage)

ServiceKind = Literal["system", "user", "termux", "login", "none"]
Platform = Literal["linux", "wsl", "termux", "other"]


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Facts:
    """What the probe found on this device (every field plain data, so tests can build one)."""

    python: tuple[int, int]
    platform: Platform
    is_root: bool
    wg_kernel: bool
    wireguard_go: bool
    wg_quick: bool
    ip_tool: bool
    bwrap: str | None  # None: works; else why not
    now: int
    hub_time: int | None  # from the hub's Date header, if it sent one
    free_bytes: dict[str, int] = field(default_factory=dict)  # dir -> free bytes
    unwritable: dict[str, str] = field(default_factory=dict)  # dir -> why
    interface_taken: str | None = None  # the kind of the link holding the name, if not WireGuard
    systemd: bool = False
    user_systemd: bool = False


@dataclass(frozen=True)
class Needs:
    """What this enrollment will need, from its options and the token."""

    token_issued_at: int
    token_expires_at: int
    service: ServiceKind
    sandbox_weak: bool = False
    own_tunnel: bool = True  # False on Termux (the app's tunnel) or with --wg-config-only
    skew_s: int = DEFAULT_SKEW_S


def check(facts: Facts, needs: Needs) -> list[Problem]:
    """Every problem found, in the order a person would fix them; [] means go."""
    out: list[Problem] = []
    if facts.python < MIN_PYTHON:
        want = ".".join(map(str, MIN_PYTHON))
        out.append(
            Problem(
                "precheck_python",
                f"Python {facts.python[0]}.{facts.python[1]} is too old",
                f"install Python {want} or newer and reinstall meshagents with it",
            )
        )
    if needs.own_tunnel:
        if not (facts.wg_kernel or facts.wireguard_go):
            out.append(
                Problem(
                    "precheck_wireguard",
                    "no WireGuard: the kernel has no wireguard module and wireguard-go is not installed",
                    "apt-get install wireguard-tools (kernel >= 5.6 has the module) or install wireguard-go",
                )
            )
        if not facts.ip_tool or (facts.wg_kernel and not facts.wg_quick and needs.service == "system"):
            out.append(
                Problem(
                    "precheck_wg_tools",
                    "wg-quick or ip is missing",
                    "apt-get install wireguard-tools iproute2",
                )
            )
        if not facts.is_root:
            out.append(
                Problem(
                    "precheck_root",
                    "bringing up a WireGuard interface needs root",
                    "run enroll with sudo, or --wg-config-only to import the tunnel in the WireGuard app",
                )
            )
        if facts.interface_taken:
            out.append(
                Problem(
                    "precheck_interface",
                    f"the interface name is taken by a {facts.interface_taken} link",
                    "pick another --interface or remove that link",
                )
            )
    if facts.bwrap is not None and not needs.sandbox_weak:
        out.append(
            Problem(
                "precheck_bwrap",
                f"the agent's sandbox cannot run: {facts.bwrap}",
                "apt-get install bubblewrap and allow unprivileged user namespaces"
                " (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04"
                " kernel.apparmor_restrict_unprivileged_userns=0), or choose --sandbox weak",
            )
        )
    if facts.now >= needs.token_expires_at:
        out.append(
            Problem(
                "precheck_token_expired",
                "the token has expired by this device's clock",
                "ask the operator for a new token (or fix the clock if it is wrong)",
            )
        )
    if facts.hub_time is not None and abs(facts.now - facts.hub_time) > needs.skew_s:
        out.append(
            Problem(
                "precheck_clock",
                f"this clock is {facts.now - facts.hub_time:+d} s off the hub's (skew {needs.skew_s} s)",
                "enable time sync (timedatectl set-ntp true) and try again",
            )
        )
    elif facts.now < needs.token_issued_at - needs.skew_s:
        out.append(
            Problem(
                "precheck_clock",
                f"this clock is {needs.token_issued_at - facts.now} s before the token was issued",
                "enable time sync (timedatectl set-ntp true) and try again",
            )
        )
    for where, free in sorted(facts.free_bytes.items()):
        if free < MIN_FREE_BYTES:
            out.append(
                Problem(
                    "precheck_disk",
                    f"{where}: {free >> 20} MiB free, {MIN_FREE_BYTES >> 20} MiB needed",
                    "free some space there",
                )
            )
    for where, why in sorted(facts.unwritable.items()):
        out.append(
            Problem("precheck_write", f"cannot write {where}: {why}", "run as root, or pick writable dirs")
        )
    if needs.service == "system" and not (facts.systemd and facts.is_root):
        out.append(
            Problem(
                "precheck_service",
                "a system service needs systemd running as PID 1 and root",
                "--service user (systemd --user), --service login (WSL without systemd) or --service none",
            )
        )
    if needs.service == "user" and not facts.user_systemd:
        out.append(
            Problem(
                "precheck_service",
                "no systemd --user session here",
                "--service login or --service none",
            )
        )
    return out


def default_service(facts: Facts) -> ServiceKind:
    """The service kind a device gets when none was asked for."""
    if facts.platform == "termux":
        return "termux"
    if facts.systemd and facts.is_root:
        return "system"
    if facts.user_systemd:
        return "user"
    if facts.platform == "wsl":
        return "login"
    return "none"


def target_dirs(state: Path, wg_config_dir: Path | None) -> list[Path]:
    """The directories enrollment writes into (checked for write access and free space)."""
    dirs = [state]
    if wg_config_dir is not None:
        dirs.append(wg_config_dir)
    return dirs
