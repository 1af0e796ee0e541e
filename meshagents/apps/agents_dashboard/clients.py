"""HTTP clients for the two APIs the dashboard reads: the hub's operator API and the bot's control API.

    hub = HubClient(base_url, token)          # the operator bearer token
    await hub.peers() -> list[dict]            # GET /api/peers -> {"peers": [...]}
    await hub.revoke(device_id) -> dict        # POST /api/peers/{id}/revoke
    await hub.audit(device_id) -> dict         # GET /api/audit/{id} -> {"entries", "chain"}
    await hub.create_token(name, profile, ttl_s) -> dict   # POST /api/tokens
    async for event in hub.events(): ...       # GET /api/events (SSE, httpx-sse), parsed dicts
    bot = BotClient(base_url, token)
    await bot.healthz() / .approvals() / .devices() / .deny(approval_id)

Every failure is an ``FnError``: ``hub_unreachable`` / ``bot_unreachable`` when the
service cannot be reached (the panels say so), otherwise the service's own
``{"error", "message"}`` code (``peer_unknown``, ``approval_decided``, ...) with its
HTTP status in ``details["status"]``. The dashboard never imports the hub's or the
bot's code: these JSON shapes are the whole contract (docs/hub.md, docs/dashboard.md).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from meshagents.errors import FnError

TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class _Api:
    service = "api"

    def __init__(self, base_url: str, token: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _unreachable(self, exc: Exception) -> FnError:
        return FnError(
            f"{self.service}_unreachable",
            f"{self.service} API at {self.base_url} not reachable: {type(exc).__name__}",
        )

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = await self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            code = body.get("error") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            raise FnError(
                str(code or f"{self.service}_http_{resp.status_code}"),
                str(message or f"{self.service} API answered {resp.status_code}"),
                status=resp.status_code,
            )
        if body is None:
            raise FnError(f"{self.service}_bad_answer", f"{self.service} API answered non-JSON for {path}")
        return body

    async def _object(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """A call whose answer is a JSON object (as the API promises; typed here once)."""
        out: dict[str, Any] = await self.request(method, path, **kw)
        return out

    async def _objects(self, path: str, key: str | None = None, *, code: str) -> list[dict[str, Any]]:
        """GET ``path``: a JSON list (or the list under ``key``), its objects only; FnError ``code``
        when there is no list."""
        body = await self.request("GET", path)
        if key is None:
            items, missing = body, "not a list"
        else:
            items, missing = (body.get(key) if isinstance(body, dict) else None), f"no {key} list"
        if not isinstance(items, list):
            raise FnError(code, f"GET {path}: {missing}")
        return [x for x in items if isinstance(x, dict)]

    async def healthz(self) -> dict[str, Any]:
        return await self._object("GET", "/healthz")


class HubClient(_Api):
    service = "hub"

    async def peers(self) -> list[dict[str, Any]]:
        return await self._objects("/api/peers", "peers", code="hub_bad_answer")

    async def revoke(self, device_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/api/peers/{_quote(device_id)}/revoke")

    async def audit(self, device_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/api/audit/{_quote(device_id)}")

    async def create_token(
        self, device_name: str, profile: str = "default", ttl_s: int = 600
    ) -> dict[str, Any]:
        body = {"device_name": device_name, "profile": profile, "ttl_s": ttl_s}
        return await self._object("POST", "/api/tokens", json=body)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The hub's live events (``{"id", "type", "ts", "data"}``) until the stream ends."""
        timeout = httpx.Timeout(10.0, connect=3.0, read=60.0)  # the hub pings every 15 s
        try:
            async with aconnect_sse(self._client, "GET", "/api/events", timeout=timeout) as src:
                if src.response.status_code != 200:
                    raise FnError(
                        "hub_events_refused", f"GET /api/events answered {src.response.status_code}",
                        status=src.response.status_code,
                    )  # fmt: skip
                async for sse in src.aiter_sse():
                    try:
                        data = json.loads(sse.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict):
                        yield data
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc


class BotClient(_Api):
    service = "bot"

    async def approvals(self) -> list[dict[str, Any]]:
        return await self._objects("/approvals", code="bot_bad_answer")

    async def devices(self) -> list[dict[str, Any]]:
        return await self._objects("/devices", code="bot_bad_answer")

    async def deny(self, approval_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/approvals/{_quote(approval_id)}/deny")
