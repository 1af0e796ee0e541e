"""``docker.container.logs`` through the Docker layer's catalog function
``docker_container_logs`` (``meshagents.runtime.api.call``: in telemetry).

Arguments (the spec, ``meshagents/capabilities/docker_logs.py``): ``{"container",
"tail", "follow_s"?}``. Never offered by the device itself: the operator grants it.
"""

from __future__ import annotations

from typing import Any

from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, as_dict
from meshagents.capabilities.docker_logs import SPEC
from meshagents.errors import FnError
from meshagents.runtime import api
from meshagents.trust.manifest import Decision


def logs(decision: Decision, container: str, ctx: Context) -> CapResult:
    tail = int(decision.extra.get("tail", 100))
    follow_s = int(decision.extra.get("follow_s", 0))
    kwargs: dict[str, Any] = {
        "container": container,
        "lines": max(1, tail),
        "output_cap": decision.output_cap_bytes,
        "docker_host": ctx.docker_host,
    }
    if follow_s:
        kwargs.update(follow=True, follow_seconds=float(min(follow_s, decision.timeout_s)))
    try:
        res = as_dict(api.call("docker_container_logs", caller=ctx.caller, **kwargs))
    except FnError as exc:
        return CapResult("error", f"{exc.code}: {exc.message}\n", detail=exc.code)
    lines = [str(x) for x in res.get("lines", [])]
    text = "\n".join(lines) + ("\n" if lines else "")
    truncated = bool(res.get("truncated"))
    if truncated:
        text += "[log output truncated at the capability's cap]\n"
    return CapResult("ok", text, 0, truncated, f"{len(lines)} lines")


def handle(decision: Decision, args: dict[str, Any], ctx: Context) -> CapResult:
    return logs(decision, str(args.get("container", "")), ctx)


HANDLER = Handler(SPEC, handle)
