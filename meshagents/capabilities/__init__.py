"""Device capabilities as specs: one module per capability, pure, imported by every app.

    SPECS                    # every capability the fleet knows, in the bot's !help order
    spec_for(capability)     # the spec a manifest capability name belongs to, or None
    SPEC_BY_NAME             # manifest name -> spec

A capability is one spec module here (its name, the bot's command for it, usage and
example, the argument parser and its inverse) and one handler module in the device
agent (``meshagents/apps/device_agent/capabilities/<module>.py``: ``SPEC``, ``run`` and
``offer``). The bot builds its command table, ``!help`` and its pre-check from
:data:`SPECS`; the agent builds its dispatch table and its enrollment offer from its
handler modules, each naming its spec. Neither app imports the other.
Adding one: ``docs/adding-a-capability.md``.
"""

from __future__ import annotations

from meshagents.capabilities import (
    camera_snapshot,
    control_cancel,
    docker_exec,
    docker_list,
    docker_logs,
    fs_list,
    fs_read,
    fs_write,
    sensors,
    sensors_read,
    shell_exec,
    system_info,
)
from meshagents.capabilities.spec import CapabilitySpec
from meshagents.capabilities.words import BadArguments

#: In the order the bot lists its commands (``!help``); a new capability goes last.
SPECS: tuple[CapabilitySpec, ...] = (
    shell_exec.SPEC,
    fs_list.SPEC,
    fs_read.SPEC,
    fs_write.SPEC,
    docker_list.SPEC,
    docker_exec.SPEC,
    docker_logs.SPEC,
    sensors.SPEC,
    camera_snapshot.SPEC,
    system_info.SPEC,
    control_cancel.SPEC,
    sensors_read.SPEC,
)
SPEC_BY_NAME: dict[str, CapabilitySpec] = {s.name: s for s in SPECS}


def spec_for(capability: str) -> CapabilitySpec | None:
    """The spec of a manifest capability: its own, or its family's (``shell.exec.ls``)."""
    exact = SPEC_BY_NAME.get(capability)
    if exact is not None:
        return exact
    return next((s for s in SPECS if s.covers(capability)), None)


__all__ = ["SPECS", "SPEC_BY_NAME", "BadArguments", "CapabilitySpec", "spec_for"]
