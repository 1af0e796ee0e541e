"""What every route module shares: the app's parts and the checks each request passes
(session, CSRF, same origin), the panel renders and the redirect back to a panel."""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from jinja2 import Environment

from meshagents.apps.agents_dashboard import views
from meshagents.apps.agents_dashboard.clients import BotClient, HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import Live
from meshagents.apps.agents_dashboard.sessions import COOKIE, Session, SessionStore
from meshagents.errors import FnError

MESSAGES = {
    "revoked": "revoked: removed from the live interface and refused for good",
    "denied": "denied: the bot posts the decision in #operator-approvals and the device room",
    "logged_out": "logged out",
}
# where each page's CSRF token goes in a shared render; random, so no data can spell it
CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "unauthorized", "message": "log in first"}, status_code=401)


_ALL = frozenset({"mesh", "matrix", "containers", "approvals", "audit_devices"})
#: What each panel's template reads (templates/_<panel>.html), beyond cfg, live and now.
_PANEL_NEEDS: dict[str | None, frozenset[str]] = {
    "status": frozenset({"matrix"}),
    "mesh": frozenset({"mesh"}),
    "devices": frozenset({"matrix"}),
    "containers": frozenset({"containers"}),
    "approvals": frozenset({"approvals"}),
    "audit": frozenset({"audit_devices"}),
}


@dataclass
class Deps:
    """The app's parts, handed to every router."""

    cfg: DashConfig
    live: Live
    hub: HubClient
    bot: BotClient | None
    sessions: SessionStore
    token: str
    env: Environment
    _cache: dict[str, tuple[int, str]] = field(default_factory=dict)

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def context(self, session: Session | None, panel: str | None = None) -> dict[str, Any]:
        """What the templates read; for one ``panel``, only what its template reads (at
        10,000 peers the mesh rows, the device matrix and the containers are each a pass
        over every peer, and a change of one panel re-renders only that one)."""
        cfg, live = self.cfg, self.live
        now = time.time()
        want = _PANEL_NEEDS.get(panel, _ALL) if panel is not None else _ALL
        ctx: dict[str, Any] = {
            "cfg": cfg,
            "live": live,
            "csrf": session.csrf if session else "",
            "now": now,
            "stale_after": views.age_text(cfg.stale_after_s),
        }
        if "mesh" in want:
            mesh = views.mesh_view(live.peers, live.rates.rates, now, cfg.stale_after_s, cfg.mesh_rows)
            ctx.update(mesh=mesh.shown, mesh_total=mesh.total, mesh_hidden=mesh.hidden,
                       revoked=mesh.revoked, online=mesh.online)  # fmt: skip
        if "matrix" in want:
            ctx["matrix"] = views.device_matrix(live.peers, live.bot_devices, now, cfg.operator_key)
        if "containers" in want:
            ctx["containers"] = views.containers(live.peers, live.bot_devices)
        if "approvals" in want:
            ctx["approvals"] = None if live.approvals is None else views.approval_rows(live.approvals, now)
        if "audit_devices" in want:
            ctx["audit_devices"] = sorted(
                str(p.get("id")) for p in live.peers if p.get("enrolled") and p.get("status") != "removed"
            )
        return ctx

    def render(self, name: str, **ctx: Any) -> str:
        return self.env.get_template(name).render(**ctx)

    def fragment(self, panel: str, session: Session) -> str:
        """One render per panel version, shared by every open page; the CSRF token goes in last."""
        version = self.live.versions.get(panel, 0)
        hit = self._cache.get(panel)
        if hit is None or hit[0] != version:
            ctx = self.context(None, panel)
            ctx["csrf"] = CSRF_SLOT
            hit = (version, self.render(f"_{panel}.html", **ctx))
            self._cache[panel] = hit
        return hit[1].replace(CSRF_SLOT, session.csrf)

    async def checked(self, request: Request) -> tuple[Session, dict[str, str]] | Response:
        """The session and form of a POST, or the 401/403 answer."""
        session = self.session_of(request)
        if session is None:
            return unauthorized()
        data = await form(request)
        if not same_origin(request) or not self.sessions.check_csrf(session, data.get("csrf")):
            return JSONResponse({"error": "csrf_failed", "message": "missing or wrong CSRF token"}, 403)
        return session, data


    async def act(
        self,
        request: Request,
        anchor: str,
        what: str,
        action: Callable[[], Awaitable[object]] | None,
        missing: str = "",
    ) -> Response | None:
        """A panel's POST: checked, then ``action`` run (None: not available, ``missing`` says
        why). The answer when it stops here (refused, failed), else None."""
        got = await self.checked(request)
        if isinstance(got, Response):
            return got
        if action is None:
            return back(anchor, err=missing)
        try:
            await action()
        except FnError as exc:
            return back(anchor, err=f"{what}: {exc.code}: {exc.message}")
        return None


async def form(request: Request) -> dict[str, str]:
    body = (await request.body())[:65536].decode("utf-8", "replace")
    return {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True  # old browsers, privacy modes: the CSRF token and SameSite still hold
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "")


def back(anchor: str, **query: str) -> RedirectResponse:
    qs = urllib.parse.urlencode(query)
    return RedirectResponse(f"/?{qs}#{anchor}" if qs else f"/#{anchor}", status_code=303)
