"""The Mesh panel's action: revoke a peer (the hub's kill switch)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meshagents.apps.agents_dashboard.routes.common import Deps, back
from meshagents.errors import FnError

log = logging.getLogger("agents_dashboard")


def router(deps: Deps) -> APIRouter:
    r = APIRouter()

    @r.post("/peers/{device_id}/revoke")
    async def revoke(request: Request, device_id: str) -> Response:
        stop = await deps.act(request, "mesh", f"revoke {device_id}", lambda: deps.hub.revoke(device_id))
        if stop is not None:
            return stop
        log.warning("revoked %s from the dashboard", device_id)
        try:
            await deps.live.refresh_peers()
        except FnError as exc:  # the revoke is done; the stream will catch up
            log.warning("peer refresh after revoke failed: %s", exc.message)
        return back("mesh", msg="revoked", id=device_id)

    return r
