"""``docker.container.list`` / ``.exec`` (and ``.exec.<program>``) / ``.logs`` through the
Docker layer's catalog functions (``meshagents.runtime.api.call``, so each call is in telemetry).

Argument shapes are the bot's (``meshagents/apps/agents_and_robots/commands.py``): list ``{}`` or
``{"all": 1}``; exec ``{"container", "argv"}`` (argv[0] already the whitelisted path,
checked lexically since it names a file inside the container); logs ``{"container",
"tail", "follow_s"?}``. A capability's ``values.container`` also bounds what list shows.
"""

from __future__ import annotations

import json
from typing import Any

from meshagents.apps.device_agent.capabilities.base import TRUNCATION_NOTE, CapResult, Context, cap_text
from meshagents.errors import FnError
from meshagents.runtime import api
from meshagents.trust.manifest import Decision


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return dict(obj)


def list_containers(decision: Decision, ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None
    try:
        rows = api.call(
            "docker_container_list",
            caller=ctx.caller,
            include_stopped=bool(decision.extra.get("all")),
            docker_host=ctx.docker_host,
        )
    except FnError as exc:
        return CapResult("error", f"{exc.code}: {exc.message}\n", detail=exc.code)
    items = [_as_dict(r) for r in rows]
    allowed = cap.values.get("container")
    if allowed is not None:
        items = [i for i in items if i.get("name") in allowed]
    lines = [f"{i.get('name')}  {i.get('image')}  {i.get('status')}" for i in items]
    text, cut = cap_text(
        "\n".join(lines) + ("\n" if lines else "(no containers)\n"), decision.output_cap_bytes
    )
    return CapResult(
        "ok",
        text,
        0,
        cut,
        f"{len(items)} containers",
        data={"containers": json.loads(json.dumps(items, default=str))},
    )


def exec_in(decision: Decision, container: str, ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None and decision.argv is not None
    try:
        res = _as_dict(
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
        res = _as_dict(api.call("docker_container_logs", caller=ctx.caller, **kwargs))
    except FnError as exc:
        return CapResult("error", f"{exc.code}: {exc.message}\n", detail=exc.code)
    lines = [str(x) for x in res.get("lines", [])]
    text = "\n".join(lines) + ("\n" if lines else "")
    truncated = bool(res.get("truncated"))
    if truncated:
        text += "[log output truncated at the capability's cap]\n"
    return CapResult("ok", text, 0, truncated, f"{len(lines)} lines")
