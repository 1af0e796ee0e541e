"""``fn hub``: the lifecycle of a provisioned hub host, from the operator's machine over SSH.

fn hub status  --host vps        units, handshakes, homeserver, certificate expiry (exit 1 when not ok)
fn hub upgrade --host vps        this checkout's code as a new release; rolled back if unhealthy
fn hub backup  --host vps        an archive made on the host, copied here (0600)
fn hub restore --host vps --archive FILE
fn hub ship-homeserver --host vps   the Synapse wheels for the host (provision_wg_hub uses it)
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import click

from meshagents.errors import FnError
from meshagents.runtime.jsonout import dumps

P = ParamSpec("P")


def _fail(exc: FnError) -> None:
    click.echo(json.dumps(exc.to_json(), ensure_ascii=False), err=True)
    sys.exit(exc.exit_code)


def _reports_errors(cmd: Callable[P, None]) -> Callable[P, None]:
    """Every ``fn hub`` command ends the same way on an FnError: its JSON on stderr, its exit status."""

    @functools.wraps(cmd)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            cmd(*args, **kwargs)
        except FnError as exc:
            _fail(exc)

    return run


def remote_json(host: str, function_id: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Run a catalog function on ``host`` and return its JSON result (its progress stays on stderr)."""
    from meshagents.remote.runner import run_remote

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = run_remote(host, function_id, argv or [], caller="fn hub")
    if rc != 0:
        raise FnError("remote_failed", f"{host}: {function_id} exited {rc}", host=host)
    text = buf.getvalue().strip()
    data: dict[str, Any] = json.loads(text) if text else {}
    return data


@click.group("hub")
def hub_group() -> None:
    """A provisioned hub host: status, upgrade, backup, restore (docs/operations.md)."""


HOST = click.option("--host", required=True, help="SSH destination of the hub (an ~/.ssh/config alias).")


@hub_group.command("status")
@HOST
@_reports_errors
def status_cmd(host: str) -> None:
    """Units, WireGuard handshakes, the homeserver and the certificate's expiry; exit 1 unless all ok."""
    out = remote_json(host, "hub_host_status")
    click.echo(dumps(out))
    sys.exit(0 if out.get("ok") else 1)


@hub_group.command("upgrade")
@HOST
@click.option("--health-timeout-s", type=float, default=120.0, show_default=True)
@_reports_errors
def upgrade_cmd(host: str, health_timeout_s: float) -> None:
    """Ship this checkout, switch the hub to it, restart in order; the old release comes back on failure."""
    out = remote_json(host, "hub_host_upgrade", ["--health-timeout-s", str(health_timeout_s)])
    click.echo(dumps(out))


@hub_group.command("backup")
@HOST
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Local directory for the archive; default <state>/backups/<host>.",
)
@_reports_errors
def backup_cmd(host: str, out_dir: Path | None) -> None:
    """Back the hub up on the host and copy the archive here (it holds keys: keep it safe)."""
    from meshagents.remote.payload import download
    from meshagents.state import state_dir

    made = remote_json(host, "hub_host_backup")
    remote = str(made["archive"])
    local = (out_dir or state_dir() / "backups" / host) / Path(remote).name
    download(host, remote, local)
    click.echo(dumps({**made, "local": str(local)}))


@hub_group.command("restore")
@HOST
@click.option("--archive", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@_reports_errors
def restore_cmd(host: str, archive: Path) -> None:
    """Upload a backup archive and restore the hub from it (services stop, then start in order)."""
    from meshagents.remote.payload import upload

    remote = upload(host, archive, f"/var/backups/meshagents/restore-{archive.name}")
    out = remote_json(host, "hub_host_restore", ["--archive", remote])
    click.echo(dumps(out))


@hub_group.command("ship-homeserver")
@HOST
@_reports_errors
def ship_cmd(host: str) -> None:
    """Gather Synapse's wheels for the host here and copy them there; prints the directory on the host."""
    from meshagents.remote.payload import ship_wheels

    click.echo(dumps({"wheels_dir": ship_wheels(host)}))
