"""The cockpit page, one panel as a fragment, the live stream of fragments, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse

from meshagents.apps.agents_dashboard.live import PANELS
from meshagents.apps.agents_dashboard.routes.common import MESSAGES, Deps, unauthorized
from meshagents.apps.agents_dashboard.sessions import COOKIE


def router(deps: Deps) -> APIRouter:
    r = APIRouter()
    live = deps.live

    @r.get("/", response_class=HTMLResponse)
    async def cockpit(request: Request, msg: str = "", err: str = "", id: str = "") -> Response:
        session = deps.session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        note = f"{id}: {MESSAGES[msg]}" if msg in MESSAGES and id else MESSAGES.get(msg, "")
        return HTMLResponse(
            deps.render("cockpit.html", message=note, error=err[:200], **deps.context(session))
        )

    @r.get("/panels/{panel}", response_class=HTMLResponse)
    async def panel(request: Request, panel: str) -> Response:
        session = deps.session_of(request)
        if session is None:
            return unauthorized()
        if panel not in PANELS:
            return JSONResponse({"error": "panel_unknown", "message": "no such panel"}, status_code=404)
        return HTMLResponse(deps.fragment(panel, session))

    @r.get("/events")
    async def events(request: Request) -> Response:
        session = deps.session_of(request)
        if session is None:
            return unauthorized()
        sub = live.subscribe()

        async def gen() -> Any:
            try:
                while True:
                    panels = await sub.wait()
                    if deps.sessions.get(request.cookies.get(COOKIE)) is None:
                        yield {"event": "logout", "data": "session ended"}
                        return
                    for p in PANELS:
                        if p in panels:
                            yield {"event": p, "data": deps.fragment(p, session)}
            finally:
                live.unsubscribe(sub)

        return EventSourceResponse(gen(), ping=15, headers={"Cache-Control": "no-store"})

    @r.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "service": "agents_dashboard", "hub": live.hub_state, "bot": live.bot_state}

    return r
