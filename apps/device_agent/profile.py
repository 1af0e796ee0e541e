"""What this device can offer: the capability entries for a manifest, by profile.

    capabilities_for(profile="default", *, home=None, camera=None, docker=None) -> list[dict]
    PROFILES = ("minimal", "default", "docker")

Run on the device at enrollment (``fn app device_agent --offer default``): the output
is plain data for the operator to sign into the device's manifest, nothing is granted
until then. Facts decide what is offered: ``camera.snapshot`` only where a V4L2
camera and ffmpeg exist (so a device without one never has it, and the agent refuses
it as ``rejected_capability``); ``shell.exec.<program>`` only for programs found in
the fixed search path; docker entries only in the ``docker`` profile. ``fs.write``
always carries ``requires_approval: true`` — the operator may lift it when signing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from apps.device_agent.capabilities import camera
from meshagents.errors import FnError
from meshagents.trust.models import DEFAULT_SEARCH_PATH

PROFILES = ("minimal", "default", "docker")
READ_ONLY_PROGRAMS = ("ls", "df", "uptime", "ps", "free", "ip", "journalctl", "systemctl")


def _find(program: str) -> list[str]:
    out = []
    for d in DEFAULT_SEARCH_PATH:
        path = f"{d}/{program}"
        if os.path.isfile(path) and os.access(path, os.X_OK) and path not in out:
            out.append(path)
    return out


def capabilities_for(
    profile: str = "default",
    *,
    home: str | None = None,
    camera_available: bool | None = None,
) -> list[dict[str, Any]]:
    if profile not in PROFILES:
        raise FnError("bad_usage", f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
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
    caps += [
        {
            "name": "fs.list",
            "description": f"list directories under {base} and {scratch}",
            "path_prefixes": [base, scratch],
            "timeout_s": 10,
            "output_cap_bytes": 65536,
        },
        {
            "name": "fs.read",
            "description": f"read files under {base} (1 MiB at most)",
            "path_prefixes": [base],
            "limits": {"max_bytes": 1 << 20},
            "timeout_s": 10,
            "output_cap_bytes": 1 << 20,
        },
        {
            "name": "fs.write",
            "description": f"write files under {scratch}, each with an operator's approval",
            "path_prefixes": [scratch],
            # "file": an upload the operator replies `!fs.write <path>` to (apps/device_agent/upload.py)
            "texts": {"content": 1 << 20, "file": 4096},
            "requires_approval": True,
            "timeout_s": 10,
        },
    ]
    for program in READ_ONLY_PROGRAMS:
        found = _find(program)
        if not found:
            continue
        entry: dict[str, Any] = {
            "name": f"shell.exec.{program}",
            "description": f"run {program} (no shell)",
            "executables": found,
            "timeout_s": 30,
            "output_cap_bytes": 65536,
        }
        if program == "ls":
            entry["path_prefixes"] = [base, scratch]
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
