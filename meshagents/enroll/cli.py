"""The click commands ``enroll``, ``leave`` and ``agent upgrade`` (registered in meshagents.runtime.cli).

Exit codes: 0 done; 3 a pre-check failed (the token was NOT used: fix and run again with
the same token); 1 a failure after the token was spent (the journal records it:
``meshagents enroll --resume``); 2 bad usage. The result is JSON on stdout (what the
pipeline ``enroll_device`` prints), progress ``[n/m]`` on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import get_args

import click

from meshagents.enroll.precheck import ServiceKind
from meshagents.errors import FnError
from meshagents.runtime.jsonout import dumps

SERVICE_KINDS = list(get_args(ServiceKind))


def _fail(exc: FnError) -> None:
    click.echo(json.dumps(exc.to_json(), ensure_ascii=False), err=True)
    sys.exit(exc.exit_code)


@click.command("enroll")
@click.option("--token", default=None, help="The enrollment token (mat1....) from the operator.")
@click.option("--resume", is_flag=True, help="Finish the enrollment the journal records (after a failure).")
@click.option("--hub", "hub_url", default=None, help="The hub's public enroll URL (default: the token's).")
@click.option("--interface", default="wg0", show_default=True, help="The mesh interface.")
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path),
    default=Path("/etc/wireguard"),
    show_default=True,
    help="Where the interface's wg-quick config goes.",
)
@click.option(
    "--out-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Manifest, client config and WireGuard key (default <state>/enrollment).",
)
@click.option(
    "--service",
    type=click.Choice(SERVICE_KINDS),
    default=None,
    help="system (systemd, a meshagents user), user (systemd --user + linger), termux (Termux:Boot),"
    " login (start at login: WSL without systemd), none. Default: what this device has.",
)
@click.option(
    "--no-systemd", is_flag=True, help="No units at all (tests, namespaces): same as --service none."
)
@click.option(
    "--sandbox",
    type=click.Choice(["bubblewrap", "weak"]),
    default="bubblewrap",
    show_default=True,
    help="weak: run without bubblewrap, stated in !help and on the dashboard.",
)
@click.option(
    "--wg-config-only",
    is_flag=True,
    default=None,
    help="Write the tunnel's config (file + QR) for the WireGuard app instead of bringing it up"
    " (the default on Termux).",
)
@click.option(
    "--ready-timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds the agent may take, once its service started, to log in and join its rooms.",
)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def enroll_cmd(
    token: str | None,
    resume: bool,
    hub_url: str | None,
    interface: str,
    config_dir: Path,
    out_dir: Path | None,
    service: ServiceKind | None,
    no_systemd: bool,
    sandbox: str,
    wg_config_only: bool | None,
    ready_timeout: float,
    quiet: bool,
) -> None:
    """Put this device on the mesh and start its agent: checks first, then spends the token."""
    from meshagents.enroll.flow import Options, Progress, enroll
    from meshagents.enroll.flow import resume as do_resume

    progress = Progress(quiet=quiet)
    try:
        if resume:
            out = do_resume(progress)
        else:
            if not token:
                raise click.UsageError("--token is required (or --resume)")
            opts = Options(
                token=token,
                hub_url=hub_url,
                interface=interface,
                config_dir=config_dir,
                out_dir=out_dir,
                service="none" if no_systemd else service,
                wg_unit=not no_systemd,
                sandbox_weak=sandbox == "weak",
                wg_config_only=wg_config_only or None,
                ready_timeout_s=ready_timeout,
            )
            out = enroll(opts, progress)
    except FnError as exc:
        _fail(exc)
        return
    click.echo(dumps(out))


@click.command("leave")
@click.option("--local", is_flag=True, help="Remove it here even when the hub cannot be told.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def leave_cmd(local: bool, quiet: bool) -> None:
    """Leave the mesh: the hub revokes this device (a request it signs); service, config, interface go."""
    from meshagents.enroll.flow import Progress
    from meshagents.enroll.leave import leave

    try:
        click.echo(dumps(leave(local=local, progress=Progress(quiet=quiet))))
    except FnError as exc:
        _fail(exc)


@click.group("agent")
def agent_group() -> None:
    """The installed device agent."""


@agent_group.command("upgrade")
@click.argument("spec", default="meshagents[agent]")
@click.option("--pip-arg", "pip_args", multiple=True, help="Passed to pip (e.g. --pip-arg=--no-index).")
def upgrade_cmd(spec: str, pip_args: tuple[str, ...]) -> None:
    """Install SPEC (a wheel, a URL, a requirement) in place and restart the agent; state kept."""
    from meshagents.enroll.upgrade import upgrade

    try:
        click.echo(dumps(upgrade(spec, pip_args=pip_args)))
    except FnError as exc:
        _fail(exc)


def register(cli: click.Group) -> None:
    for cmd in (enroll_cmd, leave_cmd, agent_group):
        cli.add_command(cmd)
