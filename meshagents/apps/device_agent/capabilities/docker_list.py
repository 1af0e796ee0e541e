"""``docker.container.list`` through the Docker layer's catalog function
``docker_container_list`` (``meshagents.runtime.api.call``, so each call is in telemetry).

Arguments (the spec, ``meshagents/capabilities/docker_list.py``): ``{}`` or ``{"all": 1}``.
A capability's ``values.container`` also bounds what the list shows. Offered only at
the ``docker`` offer level.
"""

from __future__ import annotations

import json
from typing import Any

from meshagents.apps.device_agent.capabilities.base import (
    CapResult,
    Context,
    Handler,
    OfferFacts,
    as_dict,
    cap_text,
)
from meshagents.capabilities.docker_list import SPEC
from meshagents.errors import FnError
from meshagents.runtime import api
from meshagents.trust.manifest import Decision


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
    items = [as_dict(r) for r in rows]
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


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    if facts.level != "docker":
        return []
    return [{"name": SPEC.name, "description": "list containers", "limits": {"all": 1}, "timeout_s": 10}]


HANDLER = Handler(SPEC, lambda decision, args, ctx: list_containers(decision, ctx), offer)
