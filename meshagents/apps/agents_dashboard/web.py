"""The dashboard's FastAPI app: login, the cockpit page, panel fragments, live updates, actions.

    app = create_app(cfg, live, hub, bot, sessions)

Routes (all but /login, /healthz and /static need a session):

    GET  /login, POST /login          the operator token -> session cookie (HttpOnly, SameSite=Strict)
    POST /logout
    GET  /                             the cockpit: Mesh, Devices, Containers, Approvals, Audit
    GET  /panels/{name}                one panel as an HTML fragment
    GET  /events                       server-sent events: ``event: <panel>``, ``data: <fragment>``
    GET  /audit/{device_id}            one device's chain status and recent entries
    POST /peers/{device_id}/revoke     -> hub POST /api/peers/{id}/revoke
    POST /approvals/{approval_id}/deny -> bot POST /approvals/{id}/deny
    GET  /healthz                      {"ok", "hub", "bot"} (no secrets, no session)

Every POST checks the session, the form's ``csrf`` field against the session's token
(constant time) and, when the browser sends one, that ``Origin`` is this host. Pages
are rendered on the server (Jinja2, autoescaped); the one script, ``static/app.js``,
only swaps fragments that arrive over ``/events`` and works without any CDN.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sse_starlette.sse import EventSourceResponse

from meshagents.apps.agents_dashboard import views
from meshagents.apps.agents_dashboard.clients import BotClient, HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import PANELS, Live
from meshagents.apps.agents_dashboard.sessions import COOKIE, Session, SessionStore
from meshagents.errors import FnError

log = logging.getLogger("agents_dashboard")

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MESSAGES = {
    "revoked": "revoked: removed from the live interface and refused for good",
    "denied": "denied: the bot posts the decision in #operator-approvals and the device room",
    "logged_out": "logged out",
}
LOGIN_FAIL_DELAY_S = 1.0
# where each page's CSRF token goes in a shared render; random, so no data can spell it
CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["strftime"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts)))
    return env


def create_app(
    cfg: DashConfig,
    live: Live,
    hub: HubClient,
    bot: BotClient | None,
    sessions: SessionStore,
    token: str,
) -> FastAPI:
    app = FastAPI(title="agents_dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    env = templates()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        resp: Response = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"  # Element links get no referrer
        resp.headers["X-Frame-Options"] = "DENY"
        if resp.headers.get("content-type", "").startswith("text/html"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def context(session: Session | None) -> dict[str, Any]:
        now = time.time()
        live_rows, revoked_rows = views.mesh_rows(live.peers, live.rates.rates, now, cfg.stale_after_s)
        shown, hidden = views.cap_rows(live_rows, cfg.mesh_rows)
        return {
            "cfg": cfg,
            "live": live,
            "csrf": session.csrf if session else "",
            "now": now,
            "mesh": shown,
            "mesh_total": len(live_rows),
            "mesh_hidden": hidden,
            "revoked": revoked_rows,
            "online": sum(1 for r in live_rows if r.badge == "online"),
            "matrix": views.device_matrix(live.peers, live.bot_devices, now, cfg.operator_key),
            "containers": views.containers(live.peers, live.bot_devices),
            "approvals": None if live.approvals is None else views.approval_rows(live.approvals, now),
            "audit_devices": sorted(
                str(p.get("id")) for p in live.peers if p.get("enrolled") and p.get("status") != "removed"
            ),
            "stale_after": views.age_text(cfg.stale_after_s),
        }

    def render(name: str, **ctx: Any) -> str:
        return env.get_template(name).render(**ctx)

    cache: dict[str, tuple[int, str]] = {}

    def fragment(panel: str, session: Session) -> str:
        """One render per panel version, shared by every open page; the CSRF token goes in last."""
        version = live.versions.get(panel, 0)
        hit = cache.get(panel)
        if hit is None or hit[0] != version:
            ctx = context(None)
            ctx["csrf"] = CSRF_SLOT
            hit = (version, render(f"_{panel}.html", **ctx))
            cache[panel] = hit
        return hit[1].replace(CSRF_SLOT, session.csrf)

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body())[:65536].decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return True  # old browsers, privacy modes: the CSRF token and SameSite still hold
        return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "")

    async def checked(request: Request) -> tuple[Session, dict[str, str]] | Response:
        session = session_of(request)
        if session is None:
            return JSONResponse({"error": "unauthorized", "message": "log in first"}, status_code=401)
        data = await form(request)
        if not same_origin(request) or not sessions.check_csrf(session, data.get("csrf")):
            return JSONResponse({"error": "csrf_failed", "message": "missing or wrong CSRF token"}, 403)
        return session, data

    def back(anchor: str, **query: str) -> RedirectResponse:
        qs = urllib.parse.urlencode(query)
        return RedirectResponse(f"/?{qs}#{anchor}" if qs else f"/#{anchor}", status_code=303)

    # login -----------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, msg: str = "") -> HTMLResponse:
        return HTMLResponse(render("login.html", error="", message=MESSAGES.get(msg, "")))

    @app.post("/login")
    async def login(request: Request) -> Response:
        data = await form(request)
        given = data.get("token", "").strip().encode()
        cross = not same_origin(request)
        if cross or not hmac.compare_digest(given, token.encode()):
            await asyncio.sleep(LOGIN_FAIL_DELAY_S)  # slows guessing; the token is 256 bits anyway
            log.warning(
                "dashboard login refused from %s: %s",
                request.client.host if request.client else "?",
                "cross-origin form" if cross else "wrong token",
            )
            html = render("login.html", error="That is not the operator token.", message="")
            return HTMLResponse(html, status_code=401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            COOKIE,
            sessions.create(),
            max_age=int(cfg.session_ttl_s),
            httponly=True,
            samesite="strict",
            path="/",
        )
        return resp

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        got = await checked(request)
        if isinstance(got, Response):
            return got
        sessions.drop(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login?msg=logged_out", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # pages -----------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def cockpit(request: Request, msg: str = "", err: str = "", id: str = "") -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        note = f"{id}: {MESSAGES[msg]}" if msg in MESSAGES and id else MESSAGES.get(msg, "")
        return HTMLResponse(render("cockpit.html", message=note, error=err[:200], **context(session)))

    @app.get("/panels/{panel}", response_class=HTMLResponse)
    async def panel(request: Request, panel: str) -> Response:
        session = session_of(request)
        if session is None:
            return JSONResponse({"error": "unauthorized", "message": "log in first"}, status_code=401)
        if panel not in PANELS:
            return JSONResponse({"error": "panel_unknown", "message": "no such panel"}, status_code=404)
        return HTMLResponse(fragment(panel, session))

    @app.get("/events")
    async def events(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return JSONResponse({"error": "unauthorized", "message": "log in first"}, status_code=401)
        sub = live.subscribe()

        async def gen() -> Any:
            try:
                while True:
                    panels = await sub.wait()
                    if sessions.get(request.cookies.get(COOKIE)) is None:
                        yield {"event": "logout", "data": "session ended"}
                        return
                    for p in PANELS:
                        if p in panels:
                            yield {"event": p, "data": fragment(p, session)}
            finally:
                live.unsubscribe(sub)

        return EventSourceResponse(gen(), ping=15, headers={"Cache-Control": "no-store"})

    @app.get("/audit/{device_id}", response_class=HTMLResponse)
    async def audit(request: Request, device_id: str) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        error = ""
        view: views.AuditView | None = None
        try:
            view = views.audit_summary(await hub.audit(device_id))
        except FnError as exc:
            error = f"{exc.code}: {exc.message}"
        html = render("audit.html", device_id=device_id, view=view, error=error, **context(session))
        return HTMLResponse(html, status_code=200 if view else 502 if "unreachable" in error else 404)

    # actions ---------------------------------------------------------------------------------
    @app.post("/peers/{device_id}/revoke")
    async def revoke(request: Request, device_id: str) -> Response:
        got = await checked(request)
        if isinstance(got, Response):
            return got
        try:
            await hub.revoke(device_id)
        except FnError as exc:
            return back("mesh", err=f"revoke {device_id}: {exc.code}: {exc.message}")
        log.warning("revoked %s from the dashboard", device_id)
        try:
            await live.refresh_peers()
        except FnError as exc:  # the revoke is done; the stream will catch up
            log.warning("peer refresh after revoke failed: %s", exc.message)
        return back("mesh", msg="revoked", id=device_id)

    @app.post("/approvals/{approval_id}/deny")
    async def deny(request: Request, approval_id: str) -> Response:
        got = await checked(request)
        if isinstance(got, Response):
            return got
        if bot is None:
            return back("approvals", err="no bot API configured")
        try:
            await bot.deny(approval_id)
        except FnError as exc:
            return back("approvals", err=f"deny {approval_id}: {exc.code}: {exc.message}")
        await live.poll_bot_once()
        return back("approvals", msg="denied", id=approval_id)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "service": "agents_dashboard", "hub": live.hub_state, "bot": live.bot_state}

    return app
