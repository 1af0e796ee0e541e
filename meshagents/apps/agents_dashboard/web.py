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

The routes live in ``routes/``, one module a panel; this module builds the app around them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from meshagents.apps.agents_dashboard.clients import BotClient, HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import Live
from meshagents.apps.agents_dashboard.routes import approvals, audit, auth, cockpit, mesh
from meshagents.apps.agents_dashboard.routes.common import Deps
from meshagents.apps.agents_dashboard.sessions import SessionStore

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


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

    deps = Deps(cfg=cfg, live=live, hub=hub, bot=bot, sessions=sessions, token=token, env=templates())
    for panel in (auth, cockpit, audit, mesh, approvals):
        app.include_router(panel.router(deps))
    return app
