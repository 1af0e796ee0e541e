"""``control.cancel``: stop a request that is running on this agent.

Arguments ``{"request_id": "<id>"}`` (the manifest declares ``texts: {"request_id":
128}``). It is an envelope like any other: signed, in the manifest, approved when the
manifest says ``requires_approval`` — so stopping a command needs exactly what starting
one needs. The agent's shell passes ``Context.cancel``; the running request's process
group is killed and its outcome is ``error`` with reason ``cancelled``. Codes:
``not_running`` (no such request running here), ``not_cancellable`` (it runs no
process, e.g. a file write).
"""

from __future__ import annotations

from typing import Any

from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts
from meshagents.capabilities.control_cancel import SPEC
from meshagents.trust.manifest import Decision


def run(decision: Decision, ctx: Context) -> CapResult:
    target = str(decision.extra.get("request_id", ""))
    if not target:
        return CapResult("error", "control.cancel needs a request_id\n", detail="bad_arguments")
    if ctx.cancel is None:
        return CapResult("error", f"not_running: {target} is not running here\n", detail="not_running")
    return ctx.cancel(target)


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    # !cancel <request id>: stop a running command (approval as the manifest says, like any)
    return [{"name": SPEC.name, "description": "stop a running request", "texts": {"request_id": 128},
             "timeout_s": 10}]


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
