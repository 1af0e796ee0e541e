"""What this device can offer: the capability entries for a manifest, by profile.

    capabilities_for(profile="default", *, home=None, camera_available=None,
                     protected=None) -> list[dict]
    PROFILES = ("minimal", "default", "docker")
    agent_state_paths() -> tuple[str, ...]    # where this agent keeps its state by default

Run on the device at enrollment (``fn app device_agent --offer default``): the output
is plain data for the operator to sign into the device's manifest, nothing is granted
until then. Facts decide what is offered: ``camera.snapshot`` only where a V4L2
camera and ffmpeg exist (so a device without one never has it, and the agent refuses
it as ``rejected_capability``); ``shell.exec.<program>`` only for programs found in
the fixed search path; docker entries only in the ``docker`` profile. ``fs.write``
always carries ``requires_approval: true`` — the operator may lift it when signing.

Honest offers: every option a program may take is listed (with its arity), and a
program that can change the system is offered only with constraints that keep it
read-only, or with ``requires_approval``:

- ``systemctl``: first argument one of :data:`SYSTEMCTL_READ` (``status``,
  ``is-active``, ``list-units``, ...), never ``start``/``stop``/``poweroff``;
- ``journalctl``: reading options only; ``--rotate``, ``--vacuum-*``, ``--flush``,
  ``--sync``, ``--relinquish-var``, ``--setup-keys``, ``--directory``/``--file``
  (reading any file) are not declared, so they are refused;
- ``ip``: ``requires_approval`` — a second word (``ip route flush``) changes the
  system; under the hardened sandbox it has no ``CAP_NET_ADMIN`` anyway;
- ``ps`` is no longer offered: in the sandbox's PID namespace it sees only itself.

No path of the offer reaches the agent's own state dir, config or audit store
(:func:`agent_state_paths`): a non-root agent's ``$HOME`` holds
``~/.local/state/meshagents``, so ``fs.read`` then offers the usual folders of
``$HOME`` (Documents, Downloads, ...) instead of ``$HOME`` itself. The agent refuses
such a manifest at load anyway (``manifest_covers_agent_state``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshagents.apps.device_agent.capabilities import camera
from meshagents.errors import FnError
from meshagents.trust.manifest import agent_state_conflicts
from meshagents.trust.models import DEFAULT_SEARCH_PATH, Capability, Manifest

PROFILES = ("minimal", "default", "docker")
HOME_FOLDERS = ("Documents", "Downloads", "Desktop", "Pictures", "Public")
SYSTEMCTL_READ = ("status", "is-active", "is-enabled", "is-failed", "list-units", "list-timers", "show")


def _val(name: str) -> dict[str, Any]:
    return {"name": name, "arity": 1, "path": False}


JOURNALCTL_FLAGS: list[Any] = [
    "-b", "-k", "-r", "-x", "-e", "-q", "--no-pager", "--utc",
    _val("-u"), _val("-n"), _val("-p"), _val("-o"), _val("--since"), _val("--until"),
    _val("--lines"), _val("--unit"), _val("--priority"), _val("--output"),
]  # fmt: skip

#: program -> the manifest entry's constraints (flags, first arguments, views, approval)
PROGRAMS: dict[str, dict[str, Any]] = {
    "ls": {"flags": ["-l", "-a", "-la", "-al", "-lh", "-lah", "-h", "-1", "-t", "-S", "-r"]},
    "df": {"flags": ["-h", "-k", "-T", "-hT", "-i"], "max_args": 6},
    "uptime": {"flags": ["-p", "-s"], "max_args": 1},
    "free": {"flags": ["-h", "-m", "-g", "-w"], "max_args": 2},
    "ip": {
        "flags": ["-br", "-4", "-6", "-s", "-d", "-j", "-c"],
        "subcommands": ["addr", "address", "link", "route", "neigh", "rule"],
        "limits": {"network": 1},
        "requires_approval": True,
        "max_args": 6,
    },
    "journalctl": {
        "flags": JOURNALCTL_FLAGS,
        "visible": ["/var/log/journal", "/run/log/journal", "/etc/machine-id"],
        "max_args": 12,
    },
    "systemctl": {
        "flags": ["--no-pager", "--all", "-a", "--failed", "-l", "--full", _val("--type"), _val("--state")],
        "subcommands": list(SYSTEMCTL_READ),
        "visible": ["/run/systemd", "/run/dbus/system_bus_socket"],
        "max_args": 8,
    },
}


def _find(program: str) -> list[str]:
    out = []
    for d in DEFAULT_SEARCH_PATH:
        path = f"{d}/{program}"
        if os.path.isfile(path) and os.access(path, os.X_OK) and path not in out:
            out.append(path)
    return out


def agent_state_paths() -> tuple[str, ...]:
    """This agent's default state directory (the one enrollment writes), without creating it."""
    env = os.environ.get("FN_STATE_DIR")
    if env:
        base = Path(env)
    elif os.geteuid() == 0:
        base = Path("/var/lib/meshagents")
    else:
        base = Path.home() / ".local" / "state" / "meshagents"
    return (os.path.normpath(os.path.abspath(str(base))),)


def _reaches(prefix: str, protected: tuple[str, ...]) -> bool:
    probe = Manifest.model_construct(capabilities=[Capability(name="probe", path_prefixes=[prefix])])
    return bool(agent_state_conflicts(probe, protected))


def _safe(prefixes: list[str], protected: tuple[str, ...]) -> list[str]:
    """``prefixes`` minus any that reach the agent's state; a ``$HOME`` that does is
    replaced by its usual folders that exist."""
    out: list[str] = []
    for p in prefixes:
        if not _reaches(p, protected):
            out.append(p)
            continue
        for sub in HOME_FOLDERS:
            child = os.path.join(p, sub)
            if os.path.isdir(child) and not _reaches(child, protected) and child not in out:
                out.append(child)
    return out


def capabilities_for(
    profile: str = "default",
    *,
    home: str | None = None,
    camera_available: bool | None = None,
    protected: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    if profile not in PROFILES:
        raise FnError("bad_usage", f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    protected = agent_state_paths() if protected is None else protected
    caps: list[dict[str, Any]] = [
        {"name": "system.info", "description": "host, OS, uptime, load, memory, disk", "timeout_s": 10},
        # !cancel <request id>: stop a running command (approval as the manifest says, like any)
        {"name": "control.cancel", "description": "stop a running request", "texts": {"request_id": 128},
         "timeout_s": 10},
        {"name": "sensors", "description": "thermal zones and batteries from /sys", "timeout_s": 10},
    ]
    if profile == "minimal":
        return caps
    base = os.path.normpath(home or str(Path.home()))
    scratch = "/tmp"
    listed = _safe([base, scratch], protected)
    readable = _safe([base], protected)
    writable = _safe([scratch], protected)
    if listed:
        caps.append(
            {
                "name": "fs.list",
                "description": f"list directories under {', '.join(listed)}",
                "path_prefixes": listed,
                "timeout_s": 10,
                "output_cap_bytes": 65536,
            }
        )
    if readable:
        caps.append(
            {
                "name": "fs.read",
                "description": f"read files under {', '.join(readable)} (1 MiB at most)",
                "path_prefixes": readable,
                "limits": {"max_bytes": 1 << 20},
                "timeout_s": 10,
                "output_cap_bytes": 1 << 20,
            }
        )
    if writable:
        caps.append(
            {
                "name": "fs.write",
                "description": f"write files under {', '.join(writable)}, each with an operator's approval",
                "path_prefixes": writable,
                # "file": an upload the operator replies `!fs.write <path>` to (device_agent/upload.py)
                "texts": {"content": 1 << 20, "file": 4096},
                "requires_approval": True,
                "timeout_s": 10,
            }
        )
    for program, constraints in PROGRAMS.items():
        found = _find(program)
        if not found:
            continue
        entry: dict[str, Any] = {
            "name": f"shell.exec.{program}",
            "description": f"run {program} (no shell)",
            "executables": found,
            "timeout_s": 30,
            "output_cap_bytes": 65536,
            **constraints,
        }
        if program == "ls":
            if not listed:
                continue
            entry["path_prefixes"] = listed
        caps.append(entry)
    if camera.available() if camera_available is None else camera_available:
        caps.append(
            {
                "name": "camera.snapshot",
                "description": "one JPEG from the first camera",
                "timeout_s": 20,
                "output_cap_bytes": 4096,
            }
        )
    if profile == "docker":
        caps += [
            {
                "name": "docker.container.list",
                "description": "list containers",
                "limits": {"all": 1},
                "timeout_s": 10,
            },
        ]
    return caps
