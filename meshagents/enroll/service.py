"""The device agent's service — the one owner of its unit (``fn service render device_agent`` prints
:func:`system_unit` too).

    system_unit(spec) / user_unit(spec) / termux_boot(spec) / login_script(spec)  # pure text
    install(spec, kind) -> dict        # writes, enables and starts it (the I/O)
    remove(kind, home) -> list[str]    # stops, disables and deletes what install made

What the agent needs, and so all its unit grants: its state directory (keys, manifest,
audit chain, nonce store, Matrix store — owned by the ``meshagents`` system user, 0700),
the network (Matrix and the hub over the mesh), an unprivileged user namespace for
bubblewrap (so no ``RestrictNamespaces``, no ``PrivateUsers``), and read access to what
its manifest's prefixes name — which is why there is no ``PrivateTmp`` (a profile may
name ``/tmp``) and no ``ProtectHome``; and no ``ProtectHostname``, whose seccomp filter
denies ``sethostname`` inside the sandbox's own UTS namespace too (bwrap: "Can't set hostname
to sandbox: Operation not permitted" — seen on the Debian VM). It needs no capability at all: the WireGuard
interface is brought up by root's ``wg-quick@<if>`` unit (or ``meshagents-wg-<if>`` for a
config outside ``/etc/wireguard``), which the agent's unit orders itself after. Reading
the journal or ``/var/log`` needs the ``systemd-journal``/``adm`` groups, given as
supplementary groups when they exist; the docker capabilities need ``docker``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagents.enroll.precheck import ServiceKind
from meshagents.errors import FnError

UNIT = "meshagents-agent.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SERVICE_USER = "meshagents"
OPTIONAL_GROUPS = ("systemd-journal", "adm", "docker")
LOGIN_MARK = "# meshagents: start the device agent at login"


@dataclass(frozen=True)
class ServiceSpec:
    python: str  # the interpreter the agent runs with (the one meshagents is installed in)
    config: Path  # the agent's config.json
    state: Path  # FN_STATE_DIR
    wg_unit: str | None  # the root unit that brings the mesh interface up, if any
    groups: tuple[str, ...] = ()
    home: Path = field(default_factory=Path.home)

    def exec_argv(self) -> list[str]:
        return [self.python, "-m", "meshagents.apps.device_agent", "--config", str(self.config)]


def _exec_line(spec: ServiceSpec) -> str:
    return " ".join(shlex.quote(a) for a in spec.exec_argv())


def system_unit(spec: ServiceSpec) -> str:
    after = ["network-online.target", *([spec.wg_unit] if spec.wg_unit else [])]
    lines = [
        "[Unit]",
        "Description=meshagents device agent (runs only what its operator-signed manifest allows)",
        f"After={' '.join(after)}",
        f"Wants={' '.join(after)}",
        "StartLimitIntervalSec=0",  # never give up: a hub or homeserver away for a while is not fatal
        "",
        "[Service]",
        "Type=simple",
        f"User={SERVICE_USER}",
        f"Group={SERVICE_USER}",
        *([f"SupplementaryGroups={' '.join(spec.groups)}"] if spec.groups else []),
        f"Environment=FN_STATE_DIR={spec.state}",
        "Environment=PYTHONUNBUFFERED=1",
        f"WorkingDirectory={spec.state}",
        f"ExecStart={_exec_line(spec)}",
        "Restart=always",
        "RestartSec=2",
        "KillMode=control-group",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=full",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectClock=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def user_unit(spec: ServiceSpec) -> str:
    return "\n".join(
        [
            "[Unit]",
            "Description=meshagents device agent (user service)",
            "After=network-online.target",
            "StartLimitIntervalSec=0",
            "",
            "[Service]",
            "Type=simple",
            f"Environment=FN_STATE_DIR={spec.state}",
            "Environment=PYTHONUNBUFFERED=1",
            f"ExecStart={_exec_line(spec)}",
            "Restart=always",
            "RestartSec=2",
            "UMask=0077",
            "NoNewPrivileges=yes",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def termux_boot(spec: ServiceSpec) -> str:
    """~/.termux/boot/meshagents-agent: Termux:Boot runs it after the phone booted."""
    log = spec.state / "device_agent" / "agent.log"
    return (
        "#!/data/data/com.termux/files/usr/bin/sh\n"
        "# meshagents device agent, started by Termux:Boot (written by meshagents enroll)\n"
        "termux-wake-lock\n"
        f"export FN_STATE_DIR={shlex.quote(str(spec.state))} PYTHONUNBUFFERED=1\n"
        f"exec {_exec_line(spec)} >>{shlex.quote(str(log))} 2>&1\n"
    )


def login_script(spec: ServiceSpec) -> str:
    """A start-at-login script (WSL without systemd, or anywhere with no service manager): starts the
    agent once, detached, unless one already holds the lock."""
    lock = spec.state / "device_agent" / "agent.lock"
    log = spec.state / "device_agent" / "agent.log"
    return (
        "#!/bin/sh\n"
        "# meshagents device agent, started at login (written by meshagents enroll)\n"
        f"export FN_STATE_DIR={shlex.quote(str(spec.state))} PYTHONUNBUFFERED=1\n"
        f"exec flock -n {shlex.quote(str(lock))} setsid {_exec_line(spec)} >>{shlex.quote(str(log))} 2>&1 &\n"
    )


def paths(kind: ServiceKind, home: Path) -> list[Path]:
    if kind == "system":
        return [SYSTEM_UNIT_DIR / UNIT]
    if kind == "user":
        return [home / ".config/systemd/user" / UNIT]
    if kind == "termux":
        return [home / ".termux/boot/meshagents-agent"]
    if kind == "login":
        return [home / ".config/meshagents/start-agent.sh"]
    return []


# I/O ---------------------------------------------------------------------------------------


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise FnError(
            "service_install_failed", f"{' '.join(argv)} exited {res.returncode}: {res.stderr.strip()[:300]}"
        )
    return res


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_user() -> None:
    """The ``meshagents`` system user (no login shell, no home of its own but the state dir)."""
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
        return
    except KeyError:
        pass
    _run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            "/var/lib/meshagents",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USER,
        ]
    )


def existing_groups() -> tuple[str, ...]:
    import grp

    out = []
    for name in OPTIONAL_GROUPS:
        try:
            grp.getgrnam(name)
            out.append(name)
        except KeyError:
            continue
    return tuple(out)


def hand_state_to_agent(state: Path, keep_root: list[Path]) -> None:
    """chown the state directory to the service user, keeping KEEP_ROOT (the WireGuard key) root's."""
    import pwd

    pw = pwd.getpwnam(SERVICE_USER)
    for dirpath, dirnames, filenames in os.walk(state):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                os.chown(p, pw.pw_uid, pw.pw_gid)
    for p in keep_root:
        if p.exists():
            os.chown(p, 0, 0)
            p.chmod(0o600)


def install(spec: ServiceSpec, kind: ServiceKind) -> dict[str, Any]:
    """Write the service for KIND, enable it and start (or restart) it; what was done."""
    if kind == "none":
        return {"kind": kind, "started": False}
    target = paths(kind, spec.home)[0]
    if kind == "system":
        _write(target, system_unit(spec), 0o644)
        _run(["systemctl", "daemon-reload"])
        _run(["systemctl", "enable", UNIT])
        _run(["systemctl", "restart", UNIT])
        return {"kind": kind, "unit": UNIT, "path": str(target), "started": True}
    if kind == "user":
        _write(target, user_unit(spec), 0o644)
        _run(["systemctl", "--user", "daemon-reload"])
        _run(["systemctl", "--user", "enable", UNIT])
        _run(["systemctl", "--user", "restart", UNIT])
        linger = _run(["loginctl", "enable-linger", os.environ.get("USER", "")], check=False).returncode == 0
        return {"kind": kind, "unit": UNIT, "path": str(target), "started": True, "linger": linger}
    if kind == "termux":
        _write(target, termux_boot(spec), 0o700)
        subprocess.Popen(["sh", str(target)], start_new_session=True)
        return {"kind": kind, "path": str(target), "started": True}
    _write(target, login_script(spec), 0o700)
    profile = spec.home / ".profile"
    text = profile.read_text(encoding="utf-8") if profile.exists() else ""
    if LOGIN_MARK not in text:
        with profile.open("a", encoding="utf-8") as fh:
            fh.write(f"\n{LOGIN_MARK}\n[ -x {shlex.quote(str(target))} ] && {shlex.quote(str(target))}\n")
    subprocess.run(["sh", str(target)], check=False)
    return {"kind": kind, "path": str(target), "profile": str(profile), "started": True}


def restart(kind: ServiceKind, spec: ServiceSpec | None = None) -> bool:
    if kind == "system":
        return _run(["systemctl", "restart", UNIT], check=False).returncode == 0
    if kind == "user":
        return _run(["systemctl", "--user", "restart", UNIT], check=False).returncode == 0
    return False


def stop(kind: ServiceKind) -> bool:
    """Stop the agent's unit (an upgrade); False where no service manager runs it."""
    if kind == "system":
        return _run(["systemctl", "stop", UNIT], check=False).returncode == 0
    if kind == "user":
        return _run(["systemctl", "--user", "stop", UNIT], check=False).returncode == 0
    return False


def remove(kind: ServiceKind, home: Path) -> list[str]:
    """Stop, disable and delete the service KIND made; the paths removed."""
    removed: list[str] = []
    if kind == "system" and shutil.which("systemctl"):
        _run(["systemctl", "disable", "--now", UNIT], check=False)
    if kind == "user" and shutil.which("systemctl"):
        _run(["systemctl", "--user", "disable", "--now", UNIT], check=False)
    for p in paths(kind, home):
        if p.exists():
            p.unlink()
            removed.append(str(p))
    if kind == "login":
        profile = home / ".profile"
        if profile.exists():
            lines = profile.read_text(encoding="utf-8").split("\n")
            keep: list[str] = []
            skip = False
            for line in lines:
                if line == LOGIN_MARK:
                    skip = True
                    continue
                if skip:
                    skip = False
                    continue
                keep.append(line)
            profile.write_text("\n".join(keep), encoding="utf-8")
    if kind in ("system", "user") and shutil.which("systemctl"):
        _run(["systemctl", *(["--user"] if kind == "user" else []), "daemon-reload"], check=False)
    return removed


def default_spec(config: Path, state: Path, wg_unit: str | None) -> ServiceSpec:
    return ServiceSpec(python=sys.executable, config=config, state=state, wg_unit=wg_unit)
