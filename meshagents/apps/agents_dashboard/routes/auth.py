"""Login and logout: the operator token for a session cookie (HttpOnly, SameSite=Strict)."""

from __future__ import annotations

import asyncio
import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from meshagents.apps.agents_dashboard.routes.common import MESSAGES, Deps, form, same_origin
from meshagents.apps.agents_dashboard.sessions import COOKIE

log = logging.getLogger("agents_dashboard")

LOGIN_FAIL_DELAY_S = 1.0


def router(deps: Deps) -> APIRouter:
    r = APIRouter()

    @r.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, msg: str = "") -> HTMLResponse:
        return HTMLResponse(deps.render("login.html", error="", message=MESSAGES.get(msg, "")))

    @r.post("/login")
    async def login(request: Request) -> Response:
        data = await form(request)
        given = data.get("token", "").strip().encode()
        cross = not same_origin(request)
        if cross or not hmac.compare_digest(given, deps.token.encode()):
            await asyncio.sleep(LOGIN_FAIL_DELAY_S)  # slows guessing; the token is 256 bits anyway
            log.warning(
                "dashboard login refused from %s: %s",
                request.client.host if request.client else "?",
                "cross-origin form" if cross else "wrong token",
            )
            html = deps.render("login.html", error="That is not the operator token.", message="")
            return HTMLResponse(html, status_code=401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            COOKIE,
            deps.sessions.create(),
            max_age=int(deps.cfg.session_ttl_s),
            httponly=True,
            samesite="strict",
            path="/",
        )
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        got = await deps.checked(request)
        if isinstance(got, Response):
            return got
        deps.sessions.drop(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login?msg=logged_out", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    return r
