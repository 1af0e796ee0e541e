"""Capability handlers, one module each; the agent's dispatch table is built from them.

    HANDLERS                               # every module's HANDLER (base.Handler), in offer order
    handler_for(capability) -> Handler | None   # which one serves it; None: not on this agent
    run(decision, args, ctx) -> CapResult       # blocking; the agent calls it in a worker thread
    cancellable(capability) -> bool             # it runs a process !cancel can stop

Each module declares ``HANDLER = Handler(SPEC, run, offer)``: the capability's pure spec
(``meshagents.capabilities``, which the bot's parser and ``!help`` read too), how it runs
here and what the device offers at enrollment (``offer.py`` builds the offer from
these). A handler serves the manifest capability its spec names (``<name>.<program>``
too for a family such as ``docker.container.exec``); ``shell_exec`` serves any other
capability with an executable whitelist (``shell.exec.ls``, ``system.reboot``) and is
asked last. Adding one: ``docs/adding-a-capability.md``.
"""

from __future__ import annotations

from typing import Any

from meshagents.apps.device_agent.capabilities import (
    camera,
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
from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler
from meshagents.trust.manifest import Decision
from meshagents.trust.models import Capability

__all__ = ["HANDLERS", "CapResult", "Context", "Handler", "cancellable", "handler_for", "run"]

#: In the order the device offers them (``fn app device_agent --offer``).
HANDLERS: tuple[Handler, ...] = (
    system_info.HANDLER,
    control_cancel.HANDLER,
    sensors.HANDLER,
    fs_list.HANDLER,
    fs_read.HANDLER,
    fs_write.HANDLER,
    shell_exec.HANDLER,
    camera.HANDLER,
    docker_list.HANDLER,
    docker_exec.HANDLER,
    docker_logs.HANDLER,
    sensors_read.HANDLER,
)
# the ones that name their capability first, then the fallbacks
_DISPATCH = tuple(sorted(HANDLERS, key=lambda h: h.fallback))


def handler_for(cap: Capability) -> Handler | None:
    return next((h for h in _DISPATCH if h.serves(cap)), None)


def cancellable(cap: Capability) -> bool:
    handler = handler_for(cap)
    return handler is not None and handler.cancellable


def run(decision: Decision, args: dict[str, Any], ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None
    handler = handler_for(cap)
    if handler is None:
        return CapResult("error", f"{cap.name} is not implemented by this agent\n")
    return handler.run(decision, args, ctx)
