"""Capability handlers, one module each, chosen by the manifest capability's name.

    handler_name(capability) -> str | None      # which module serves it; None: not on this agent
    run(decision, args, ctx) -> CapResult       # blocking; the agent calls it in a worker thread

Names follow the trust core and the bot: ``shell.exec`` or ``shell.exec.<program>``
(any other capability with an executable whitelist, e.g. ``system.reboot``, runs the
same way), ``fs.list``, ``fs.read``, ``fs.write``, ``system.info``, ``sensors``,
``camera.snapshot``, ``control.cancel``, ``docker.container.list``, ``docker.container.exec[.<program>]``,
``docker.container.logs``.
"""

from __future__ import annotations

from typing import Any

from meshagents.apps.device_agent.capabilities import (
    camera,
    control_cancel,
    docker_caps,
    fs_list,
    fs_read,
    fs_write,
    sensors,
    shell_exec,
    system_info,
)
from meshagents.apps.device_agent.capabilities.base import CapResult, Context
from meshagents.trust.manifest import Decision
from meshagents.trust.models import Capability

__all__ = ["CapResult", "Context", "handler_name", "run"]


def _family(name: str, family: str) -> bool:
    return name == family or name.startswith(family + ".")


def handler_name(cap: Capability) -> str | None:
    name = cap.name
    if _family(name, "docker.container.exec"):
        return "docker.exec"
    if name == "docker.container.list":
        return "docker.list"
    if name == "docker.container.logs":
        return "docker.logs"
    if name in ("fs.list", "fs.read", "fs.write", "system.info", "sensors", "camera.snapshot"):
        return name
    if name == "control.cancel":
        return name
    if cap.executables and not name.startswith("docker."):
        return "exec"
    return None


def run(decision: Decision, args: dict[str, Any], ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None
    which = handler_name(cap)
    if which == "exec":
        return shell_exec.run(decision, ctx)
    if which == "fs.list":
        return fs_list.run(decision, ctx)
    if which == "fs.read":
        return fs_read.run(decision, ctx)
    if which == "fs.write":
        content = args.get("content", "")
        return fs_write.run(decision, content if isinstance(content, bytes) else str(content), ctx)
    if which == "system.info":
        return system_info.run(decision, ctx)
    if which == "sensors":
        return sensors.run(decision, ctx)
    if which == "camera.snapshot":
        return camera.run(decision, ctx)
    if which == "control.cancel":
        return control_cancel.run(decision, ctx)
    if which == "docker.list":
        return docker_caps.list_containers(decision, ctx)
    if which == "docker.exec":
        return docker_caps.exec_in(decision, str(args.get("container", "")), ctx)
    if which == "docker.logs":
        return docker_caps.logs(decision, str(args.get("container", "")), ctx)
    return CapResult("error", f"{cap.name} is not implemented by this agent\n")
