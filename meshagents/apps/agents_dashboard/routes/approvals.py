"""The Approvals panel's action: deny a pending approval through the bot."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meshagents.apps.agents_dashboard.routes.common import Deps, back


def router(deps: Deps) -> APIRouter:
    r = APIRouter()

    @r.post("/approvals/{approval_id}/deny")
    async def deny(request: Request, approval_id: str) -> Response:
        bot = deps.bot
        action = None if bot is None else (lambda: bot.deny(approval_id))
        stop = await deps.act(
            request, "approvals", f"deny {approval_id}", action, missing="no bot API configured"
        )
        if stop is not None:
            return stop
        await deps.live.poll_bot_once()
        return back("approvals", msg="denied", id=approval_id)

    return r
