"""HubApi against the hub's real operator app (meshagents/apps/wg_hub/web.py) in-process, with a
stand-in Hub object behind it: the routes, the bearer token and the error format the
bot relies on are the hub's own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from meshagents.apps.agents_and_robots.directory import HubApi, HubDirectory
from meshagents.apps.wg_hub.web import operator_app
from meshagents.errors import FnError

pytestmark = pytest.mark.unit

TOKEN = "t0k3n"


class StandInHub:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = [
            {"id": "home", "name": "home", "status": "active", "latest_handshake": 1_800_000_000.0},
            {"id": "old", "name": "old", "status": "revoked", "latest_handshake": None},
        ]

    def peers(self) -> list[dict[str, Any]]:
        return self.rows

    def revoke_peer(self, device_id: str) -> dict[str, Any]:
        for row in self.rows:
            if row["name"] == device_id:
                row["status"] = "revoked"
                return {"name": device_id, "status": "revoked"}
        raise FnError("peer_unknown", f"no peer {device_id!r}")


def api(hub: StandInHub, token: str = TOKEN) -> HubApi:
    transport = httpx.ASGITransport(app=operator_app(hub, TOKEN))  # type: ignore[arg-type]
    return HubApi("http://hub", token, transport=transport)


async def test_peers_and_revoke_through_the_hub_app() -> None:
    hub = StandInHub()
    client = api(hub)
    assert [p["name"] for p in await client.peers()] == ["home", "old"]
    assert (await client.revoke("home"))["status"] == "revoked"
    with pytest.raises(FnError) as err:
        await client.revoke("nobody")
    assert err.value.code == "peer_unknown"
    d = HubDirectory(client)
    await d.refresh()
    devices = d.devices()
    assert devices["home"].revoked and devices["old"].revoked and devices["home"].handshake_known
    assert devices["home"].last_handshake == 1_800_000_000.0 and devices["home"].manifest is None


async def test_wrong_token_and_unreachable_hub() -> None:
    with pytest.raises(FnError) as err:
        await api(StandInHub(), token="wrong").peers()
    assert err.value.code == "unauthorized"
    with pytest.raises(FnError) as err:
        await HubApi("http://127.0.0.1:9", TOKEN, timeout=2).peers()
    assert err.value.code == "hub_unreachable"
