"""The Audit panel's page: one device's chain status and recent entries (from the hub)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from meshagents.apps.agents_dashboard import views
from meshagents.apps.agents_dashboard.routes.common import Deps
from meshagents.errors import FnError


def router(deps: Deps) -> APIRouter:
    r = APIRouter()

    @r.get("/audit/{device_id}", response_class=HTMLResponse)
    async def audit(request: Request, device_id: str) -> Response:
        session = deps.session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        error = ""
        view: views.AuditView | None = None
        try:
            view = views.audit_summary(await deps.hub.audit(device_id))
        except FnError as exc:
            error = f"{exc.code}: {exc.message}"
        html = deps.render("audit.html", device_id=device_id, view=view, error=error, **deps.context(session))
        return HTMLResponse(html, status_code=200 if view else 502 if "unreachable" in error else 404)

    return r
