"""Live state: hub stream followed (events folded in, topology re-read), hub loss shown, marks coalesced."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from meshagents.apps.agents_dashboard.clients import HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import Live
from tests.unit.apps.agents_dashboard import shapes

pytestmark = pytest.mark.unit


def sse(*events: dict[str, object]) -> bytes:
    return b"".join(
        f"event: {e['type']}\nid: {e.get('id', 1)}\ndata: {json.dumps(e)}\n\n".encode() for e in events
    )


async def test_follow_hub_folds_events_and_rereads_on_topology() -> None:
    reads = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/peers":
            reads.append(1)
            return httpx.Response(200, json={"peers": shapes.PEERS})
        if request.url.path == "/api/events":
            body = sse(
                shapes.PEER_STATS, {"id": 8, "type": "peer_revoked", "ts": 1, "data": {"device_id": "pi"}}
            )
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(404, json={"error": "x", "message": "x"})

    hub = HubClient("http://hub", "t", transport=httpx.MockTransport(handler))
    live = Live(DashConfig(), hub, None, clock=lambda: shapes.NOW)
    sub = live.subscribe()
    task = asyncio.create_task(live.follow_hub())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if live.hub_events >= 2:
            break
    task.cancel()
    assert live.hub_events >= 2
    assert len(reads) >= 2  # at start and after peer_revoked
    ws = next(p for p in live.peers if p["id"] == "home-wsl")
    assert ws["rx_bytes"] == 2048  # re-read after the revoke event: the hub's list wins
    marks = await sub.wait()
    assert {"mesh", "devices", "status"} <= marks
    assert live.hub_state == "disconnected"  # the recorded stream ended; it will reconnect


async def test_hub_unreachable_is_shown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    hub = HubClient("http://hub", "t", transport=httpx.MockTransport(handler))
    live = Live(DashConfig(), hub, None)
    task = asyncio.create_task(live.follow_hub())
    await asyncio.sleep(0.05)
    task.cancel()
    assert live.hub_state == "disconnected" and "not reachable" in live.hub_error
    assert live.bot_state == "not configured"


def test_rates_from_stats_event() -> None:
    live = Live(DashConfig(), HubClient("http://hub", "t"), None, clock=lambda: shapes.NOW)
    live.peers = [dict(p) for p in shapes.PEERS]
    for p in live.peers:
        live.rates.update(p["public_key"], p["rx_bytes"], p["tx_bytes"], shapes.NOW)
    live.handle(json.loads(json.dumps(shapes.PEER_STATS)))
    assert live.rates.rates[shapes.KEY_A] == (1024.0, 0.0)  # 2048 bytes in 2 s
    assert live.rates.rates[shapes.KEY_B] == (0.0, 0.0)
