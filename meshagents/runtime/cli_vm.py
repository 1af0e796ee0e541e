"""``fn vm``: build, boot, reach and stop the test bed's Debian 12 VM (the "VPS").

    ./fn vm build [--force]                       cache the image (<cache>/vm/<recipe-sha>/)
    ./fn vm up [--name N] [--mem 1024] [--smp 2]  boot it; prints connection info as JSON
    ./fn vm ssh N -- CMD...                       run CMD in the guest (root)
    ./fn vm attach N NETNS                        put namespace NETNS on the VM's segment
    ./fn vm list | ./fn vm down N | ./fn vm down --stale   (VMs of killed test runs)

The library is ``meshagents.testbed.vm``; this module only parses and prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from meshagents.errors import FnError
from meshagents.runtime.jsonout import dumps


def _fail(exc: FnError) -> None:
    click.echo(json.dumps(exc.to_json(), ensure_ascii=False), err=True)
    sys.exit(exc.exit_code)


@click.group("vm")
def vm_group() -> None:
    """A real Debian 12 VM (qemu TCG) for tests: kernel WireGuard, systemd, reboots."""


@vm_group.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if the recipe's image is cached.")
def build_cmd(force: bool) -> None:
    """Build (or find) the cached image for the current recipe; prints its directory."""
    from meshagents.testbed.vm import image

    try:
        img = image.build(force=force)
    except FnError as exc:
        _fail(exc)
        return
    click.echo(dumps({"sha": img.sha, "dir": str(img.dir)}))


@vm_group.command("up")
@click.option("--name", default=None, help="VM name (default vm<hex>); names its netns vm-<name>.")
@click.option("--mem", "mem_mb", type=int, default=1024, show_default=True, help="Guest memory, MiB.")
@click.option("--smp", type=int, default=2, show_default=True, help="Guest CPUs.")
def up_cmd(name: str | None, mem_mb: int, smp: int) -> None:
    """Boot a VM on an overlay of the cached image and wait for sshd; prints JSON."""
    from meshagents.testbed.vm import machine

    try:
        vm = machine.up(name, mem_mb=mem_mb, smp=smp)
    except (FnError, ValueError) as exc:
        _fail(exc if isinstance(exc, FnError) else FnError("bad_usage", str(exc)))
        return
    click.echo(dumps(vm.info()))


@vm_group.command("down")
@click.argument("name", required=False)
@click.option("--stale", is_flag=True, help="Instead: every VM whose owner process (a test run) is gone.")
@click.option("--base", type=click.Path(path_type=Path), default=None,
              help="The run directory's parent, for a VM a fixture started elsewhere.")  # fmt: skip
def down_cmd(name: str | None, stale: bool, base: Path | None) -> None:
    """Stop VM NAME: qemu, forwards, namespace and overlay disk (or, with --stale, the left-overs
    of killed test runs)."""
    from meshagents.testbed.vm import machine

    if stale == (name is not None):
        _fail(FnError("bad_usage", "give a VM name or --stale (not both)"))
        return
    if stale:
        click.echo(dumps({"removed": machine.down_stale()}))
        return
    assert name is not None
    click.echo(dumps({"name": name, "removed": machine.down(name, base=base)}))


@vm_group.command("list")
def list_cmd() -> None:
    """The VMs recorded in the state directory, with their connection info."""
    from meshagents.testbed.vm import machine

    click.echo(dumps([vm.info() for vm in machine.running()]))


@vm_group.command("info")
@click.argument("name")
def info_cmd(name: str) -> None:
    """Connection info of VM NAME as JSON."""
    from meshagents.testbed.vm import machine

    try:
        click.echo(dumps(machine.Vm.load(name).info()))
    except FnError as exc:
        _fail(exc)


@vm_group.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_cmd(name: str, command: tuple[str, ...]) -> None:
    """ssh into VM NAME (interactive without CMD); the exit code is the command's."""
    from meshagents.testbed.vm import machine

    try:
        vm = machine.Vm.load(name)
    except FnError as exc:
        _fail(exc)
        return
    argv = vm.ssh_argv(" ".join(command) if command else None, interactive=not command)
    sys.exit(subprocess.run(argv, check=False).returncode)


@vm_group.command("attach")
@click.argument("name")
@click.argument("netns")
@click.option("--default-route", is_flag=True, help="Also route NETNS's default via the segment's .1.")
def attach_cmd(name: str, netns: str, default_route: bool) -> None:
    """Put the existing namespace NETNS on VM NAME's segment; prints its address."""
    from meshagents.testbed.vm import machine

    try:
        addr = machine.Vm.load(name).attach(netns, default_route=default_route)
    except FnError as exc:
        _fail(exc)
        return
    click.echo(dumps({"netns": netns, "address": addr.with_prefixlen}))
