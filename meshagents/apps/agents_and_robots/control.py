"""The bot's control API for the dashboard (aiohttp, bearer token, loopback by default).

    GET  /healthz                    -> {"state": "ok" | "degraded" | "starting",   (no token)
                                         "pending_identities": {operator: new master key}}
                                        (the latter only while one waits for confirmation)
    GET  /approvals                  -> [approval row ...]   pending first, then recent decided
    POST /approvals/{id}/deny        -> 200 {"state": "denied"} | 404 approval_not_found
                                        | 409 approval_decided
    GET  /devices                    -> [{"device", "room_id", "room_alias", "agent_state",
                                          "last_status_ts", "sandbox"}]

Errors are ``{"error": code, "message": ...}``. The token is the hub's operator API
token (key store ``wg_hub/api_token``), compared in constant time. There is no approve
endpoint on purpose: an approval stays a verifiable Matrix event from an operator's
device; a deny from here is the bearer holder's (the operator's) decision, posted as a
notice in both rooms and recorded with ``decided_by`` "dashboard".

``approval_rows`` and ``device_rows`` are the pure parts (unit-tested); ``ControlApi``
wires them to a ``Controlled`` object (the shell) and serves them.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from meshagents.apps.agents_and_robots.approvals import ApprovalRequest, State, preview_args

log = logging.getLogger("agents_and_robots")

DEFAULT_PORT = 8766
RECENT_DECIDED = 50


@dataclass(frozen=True)
class DeviceStatus:
    """The last org.meshagents.status a device agent posted."""

    state: str
    ts: float
    sandbox: str | None = None  # "bwrap" | "weak" (no isolation), as the agent said


def approval_rows(
    requests: Iterable[ApprovalRequest],
    request_id_of: Mapping[str, str],
    approvals_room_id: str,
    *,
    recent: int = RECENT_DECIDED,
) -> list[dict[str, Any]]:
    """Pending requests (oldest first), then the ``recent`` latest decided ones."""
    reqs = list(requests)
    pending = sorted((r for r in reqs if r.state is State.PENDING), key=lambda r: (r.created_at, r.id))
    decided = sorted((r for r in reqs if r.state is not State.PENDING),
                     key=lambda r: (-(r.decided_at or r.created_at), r.id))[:recent]
    return [
        {
            "approval_id": r.id,
            "request_id": request_id_of.get(r.id),
            "device": r.device,
            "capability": r.capability,
            "args_preview": preview_args(r.args),
            "requester": r.requester,
            "created_at": int(r.created_at),
            "expires_at": int(r.expires_at),
            "request_event_id": r.event_id,
            "room_id": approvals_room_id,
            "state": r.state.value,
            "decided_by": r.decided_by,
        }
        for r in [*pending, *decided]
    ]


def device_rows(
    rooms: Mapping[str, tuple[str, str | None]],
    statuses: Mapping[str, DeviceStatus],
    *,
    now: float,
    stale_after_s: float = 600.0,
) -> list[dict[str, Any]]:
    """``rooms``: device -> (room id, alias). The agent state is the one it last posted,
    ``unknown`` when it never posted or its last word is older than ``stale_after_s``."""
    out = []
    for device in sorted(rooms):
        room_id, alias = rooms[device]
        st = statuses.get(device)
        state = "unknown"
        if st is not None and now - st.ts <= stale_after_s and st.state in ("ok", "degraded"):
            state = st.state
        out.append({"device": device, "room_id": room_id, "room_alias": alias, "agent_state": state,
                    "last_status_ts": int(st.ts) if st is not None else None,
                    "sandbox": st.sandbox if st is not None else None})
    return out


def token_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time; an empty token never matches."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].encode(), token.encode())


class Controlled(Protocol):
    """What the control API asks of the running bot."""

    def health(self) -> str: ...

    def approvals(self) -> list[dict[str, Any]]: ...

    def devices_listing(self) -> list[dict[str, Any]]: ...

    async def deny(self, approval_id: str) -> str: ...  # "denied" | "not_found" | "decided"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


class ControlApi:
    def __init__(self, bot: Controlled, token: str) -> None:
        self.bot = bot
        self.token = token
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path != "/healthz" and not token_ok(request.headers.get("Authorization"), self.token):
                return _error(401, "unauthorized", "operator bearer token required")
            try:
                resp: web.StreamResponse = await handler(request)
                return resp
            except web.HTTPException as exc:
                return _error(exc.status, "not_found" if exc.status == 404 else "bad_request", exc.reason)
            except Exception:
                log.exception("control API %s %s failed", request.method, request.path)
                return _error(500, "internal_error", "the bot could not answer; see its log")

        app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/approvals", self._approvals)
        app.router.add_post("/approvals/{approval_id}/deny", self._deny)
        app.router.add_get("/devices", self._devices)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        # an operator's reset identity the operator key has not confirmed yet (public keys only)
        pending = getattr(self.bot, "pending_identities", None)
        out: dict[str, Any] = {"state": self.bot.health()}
        if callable(pending) and pending():
            out["pending_identities"] = pending()
        return web.json_response(out)

    async def _approvals(self, _: web.Request) -> web.Response:
        return web.json_response(self.bot.approvals())

    async def _devices(self, _: web.Request) -> web.Response:
        return web.json_response(self.bot.devices_listing())

    async def _deny(self, request: web.Request) -> web.Response:
        approval_id = request.match_info["approval_id"]
        outcome = await self.bot.deny(approval_id)
        if outcome == "not_found":
            return _error(404, "approval_not_found", f"no approval {approval_id[:32]!r}")
        if outcome == "decided":
            return _error(409, "approval_decided", f"approval {approval_id[:32]!r} is already decided")
        return web.json_response({"state": "denied"})

    async def start(self, hosts: Iterable[str], port: int) -> list[tuple[str, int]]:
        """Listen on each host; returns the bound (host, port) pairs (port 0: a free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        bound: list[tuple[str, int]] = []
        for host in hosts:
            site = web.TCPSite(self._runner, host, port)
            await site.start()
            server = site._server  # aiohttp keeps the asyncio server here; we need the real port
            for sock in getattr(server, "sockets", None) or []:
                addr = sock.getsockname()
                bound.append((str(addr[0]), int(addr[1])))
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
