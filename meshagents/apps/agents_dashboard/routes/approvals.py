"""The Approvals panel's action: deny a pending approval through the bot."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meshagents.apps.agents_dashboard.routes.common import Deps, back
from meshagents.errors import FnError


def router(deps: Deps) -> APIRouter:
    r = APIRouter()

    @r.post("/approvals/{approval_id}/deny")
    async def deny(request: Request, approval_id: str) -> Response:
        got = await deps.checked(request)
        if isinstance(got, Response):
            return got
        if deps.bot is None:
            return back("approvals", err="no bot API configured")
        try:
            await deps.bot.deny(approval_id)
        except FnError as exc:
            return back("approvals", err=f"deny {approval_id}: {exc.code}: {exc.message}")
        await deps.live.poll_bot_once()
        return back("approvals", msg="denied", id=approval_id)

    return r
