"""device_enroll: the whole enrollment of this device in one call (what `meshagents enroll` runs).

A thin catalog entry over :mod:`meshagents.enroll.flow`, so the pipeline ``enroll_device``
(and ``fn run --host HOST device_enroll``) is one process from token to agent, like the
command. Progress goes to stderr unless FN_QUIET is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from meshagents.runtime.catalog import function


@function(id="device_enroll", group="enrollment", requires=["network", "wireguard"])
def device_enroll(
    token: str | None = None,
    resume: bool = False,
    hub_url: str | None = None,
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    out_dir: Path | None = None,
    service: Literal["auto", "system", "user", "termux", "login", "none"] = "auto",
    systemd: bool = True,
    sandbox: Literal["bubblewrap", "weak"] = "bubblewrap",
    wg_config_only: bool = False,
) -> dict[str, Any]:
    """Check this device, enroll with TOKEN, bring up the mesh, write the agent's config, start its service.

    Args:
        token: the enrollment token (mat1....); not used at all when a pre-check fails (exit 3, the
            precheck_* code), so the same token enrolls once the device is fixed.
        resume: finish the enrollment the journal (<state>/enroll/journal.json) records instead.
        hub_url: the hub's public enroll URL, with scheme; default: the one named in the token.
        interface: the mesh interface to create (its config is <config_dir>/<interface>.conf).
        config_dir: directory of the interface's wg-quick config (created 0700).
        out_dir: directory for manifest.json, client.conf and the WireGuard key; default <state>/enrollment.
        service: the agent's service: system (systemd unit, user meshagents), user (systemd --user with
            lingering), termux (Termux:Boot script), login (start at login), none; auto: what this device has.
        systemd: --no-systemd installs no unit at all (neither the interface's nor the agent's).
        sandbox: weak runs the agent without bubblewrap (stated in !help and on the dashboard).
        wg_config_only: write the tunnel config and a QR for the WireGuard app instead of bringing it up
            (always on Termux).
    """
    from meshagents.enroll.flow import Options, Progress, enroll
    from meshagents.enroll.flow import resume as do_resume
    from meshagents.errors import UsageError

    progress = Progress(quiet=bool(os.environ.get("FN_QUIET")))
    if resume:
        return do_resume(progress)
    if not token:
        raise UsageError("--token is required (or --resume)")
    kind = None if service == "auto" else service
    return enroll(
        Options(
            token=token,
            hub_url=hub_url,
            interface=interface,
            config_dir=config_dir,
            out_dir=out_dir,
            service="none" if not systemd else kind,
            wg_unit=systemd,
            sandbox_weak=sandbox == "weak",
            wg_config_only=True if wg_config_only else None,
        ),
        progress,
    )
