"""``docker.container.exec`` (and ``.exec.<program>``) through the Docker layer's catalog
function ``docker_container_exec`` (``meshagents.runtime.api.call``: in telemetry).

Arguments (the spec, ``meshagents/capabilities/docker_exec.py``): ``{"container",
"argv"}``, argv[0] already the whitelisted path, checked lexically since it names a
file inside the container. Never offered by the device itself: the operator grants it.
"""

from __future__ import annotations

from typing import Any

from meshagents.apps.device_agent.capabilities.base import (
    TRUNCATION_NOTE,
    CapResult,
    Context,
    Handler,
    as_dict,
)
from meshagents.capabilities.docker_exec import SPEC
from meshagents.errors import FnError
from meshagents.runtime import api
from meshagents.trust.manifest import Decision


def exec_in(decision: Decision, container: str, ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None and decision.argv is not None
    try:
        res = as_dict(
            api.call(
                "docker_container_exec",
                caller=ctx.caller,
                container=container,
                argv=decision.argv,
                whitelist=list(cap.executables),
                timeout=float(decision.timeout_s),
                output_cap=decision.output_cap_bytes,
                docker_host=ctx.docker_host,
            )
        )
    except FnError as exc:
        return CapResult("error", f"{exc.code}: {exc.message}\n", detail=exc.code)
    text = str(res.get("stdout", "")) + str(res.get("stderr", ""))
    truncated = bool(res.get("stdout_truncated") or res.get("stderr_truncated"))
    if truncated:
        total = int(res.get("stdout_bytes", 0)) + int(res.get("stderr_bytes", 0))
        text += TRUNCATION_NOTE.format(kept=len(text.encode("utf-8")), total=total)
    code = res.get("exit_code")
    if res.get("timed_out"):
        return CapResult("timeout", text, code, truncated, f"killed after {decision.timeout_s} s")
    return CapResult("ok", text, code, truncated, f"exit {code}")


def handle(decision: Decision, args: dict[str, Any], ctx: Context) -> CapResult:
    return exec_in(decision, str(args.get("container", "")), ctx)


HANDLER = Handler(SPEC, handle)
