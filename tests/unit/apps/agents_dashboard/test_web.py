"""The dashboard app in-process (Starlette TestClient), the hub and bot answered from recorded shapes."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from meshagents.apps.agents_dashboard.clients import BotClient, HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import Live
from meshagents.apps.agents_dashboard.sessions import COOKIE, SessionStore
from meshagents.apps.agents_dashboard.web import create_app
from tests.unit.apps.agents_dashboard import shapes

pytestmark = pytest.mark.unit
TOKEN = "operator-token-for-tests"


class Fake:
    """The hub and the bot behind httpx.MockTransport; records what the dashboard asked."""

    def __init__(self) -> None:
        self.peers = [dict(p) for p in shapes.PEERS]
        self.approvals = [dict(a) for a in shapes.APPROVALS]
        self.calls: list[tuple[str, str]] = []
        self.bot_up = True

    def hub(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"error": "unauthorized", "message": "no"})
        path = request.url.path
        if path == "/api/peers":
            return httpx.Response(200, json={"peers": self.peers})
        m = re.fullmatch(r"/api/peers/([^/]+)/revoke", path)
        if m and request.method == "POST":
            for p in self.peers:
                if p["id"] == m.group(1):
                    p["status"] = "revoked"
                    return httpx.Response(
                        200, json={"name": p["id"], "address": p["address"], "revoked": True}
                    )
            return httpx.Response(404, json={"error": "peer_unknown", "message": "no peer"})
        if path == "/api/audit/pi":
            return httpx.Response(200, json=shapes.AUDIT_BROKEN)
        if path == "/api/audit/home-wsl":
            return httpx.Response(200, json=shapes.AUDIT_OK)
        return httpx.Response(404, json={"error": "device_unknown", "message": "no device"})

    def bot(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, "bot" + request.url.path))
        if not self.bot_up:
            raise httpx.ConnectError("refused", request=request)
        path = request.url.path
        if path == "/approvals":
            return httpx.Response(200, json=self.approvals)
        if path == "/devices":
            return httpx.Response(200, json=shapes.BOT_DEVICES)
        m = re.fullmatch(r"/approvals/([^/]+)/deny", path)
        if m:
            for a in self.approvals:
                if a["approval_id"] == m.group(1):
                    if a["state"] != "pending":
                        return httpx.Response(409, json={"error": "approval_decided", "message": a["state"]})
                    a["state"] = "denied"
                    return httpx.Response(200, json={"state": "denied"})
            return httpx.Response(404, json={"error": "approval_not_found", "message": "?"})
        return httpx.Response(404, json={"error": "not_found", "message": path})


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def env(fake: Fake) -> tuple[TestClient, Live]:
    cfg = DashConfig(hub_api="http://hub", bot_api="http://bot", hosts=("127.0.0.1",))
    hub = HubClient(cfg.hub_api, TOKEN, transport=httpx.MockTransport(fake.hub))
    bot = BotClient("http://bot", TOKEN, transport=httpx.MockTransport(fake.bot))
    live = Live(cfg, hub, bot)
    asyncio.run(live.refresh_peers())
    asyncio.run(live.poll_bot_once())
    app = create_app(cfg, live, hub, bot, SessionStore(), TOKEN)
    return TestClient(app, base_url="http://127.0.0.1:8080"), live


def login(client: TestClient) -> str:
    resp = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert resp.status_code == 303
    page = client.get("/")
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


def test_pages_need_a_session(env: tuple[TestClient, Live]) -> None:
    client, _ = env
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/events").status_code == 401
    assert client.get("/panels/mesh").status_code == 401
    assert client.post("/peers/pi/revoke", data={"csrf": "x"}).status_code == 401
    assert client.get("/healthz").json()["ok"] is True


def test_wrong_token_refused(env: tuple[TestClient, Live], monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = env
    monkeypatch.setattr("meshagents.apps.agents_dashboard.web.LOGIN_FAIL_DELAY_S", 0)
    resp = client.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert resp.status_code == 401 and COOKIE not in resp.cookies


def test_login_cookie_flags_and_cockpit(env: tuple[TestClient, Live]) -> None:
    client, _ = env
    resp = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert 'data-peer="home-wsl"' in html and 'data-peer="cont-web"' in html
    # revoked peers leave the live table and go to the revoked list
    live_table = html.split('id="mesh-peers"')[1].split("</table>")[0]
    assert 'data-peer="old"' not in live_table
    assert 'id="mesh-revoked"' in html
    assert "https://matrix.to/#/!ap:hub.test/$e1:hub.test" in html
    assert "cdn" not in html.lower() and "http://" not in html.replace("http://127.0.0.1", "")


def test_revoke_needs_csrf_then_calls_hub(env: tuple[TestClient, Live], fake: Fake) -> None:
    client, live = env
    csrf = login(client)
    assert client.post("/peers/pi/revoke", data={}).status_code == 403
    assert client.post("/peers/pi/revoke", data={"csrf": "wrong"}).status_code == 403
    evil = client.post("/peers/pi/revoke", data={"csrf": csrf}, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    assert ("POST", "/api/peers/pi/revoke") not in fake.calls
    resp = client.post("/peers/pi/revoke", data={"csrf": csrf}, follow_redirects=False)
    assert resp.status_code == 303 and "msg=revoked" in resp.headers["location"]
    assert ("POST", "/api/peers/pi/revoke") in fake.calls
    assert next(p for p in live.peers if p["id"] == "pi")["status"] == "revoked"
    live_table = client.get("/panels/mesh").text.split("</table>")[0]
    assert 'data-peer="pi"' not in live_table
    missing = client.post("/peers/nobody/revoke", data={"csrf": csrf}, follow_redirects=False)
    assert "peer_unknown" in missing.headers["location"]


def test_deny_goes_to_the_bot(env: tuple[TestClient, Live], fake: Fake) -> None:
    client, _ = env
    csrf = login(client)
    resp = client.post("/approvals/ap-1/deny", data={"csrf": csrf}, follow_redirects=False)
    assert resp.status_code == 303 and "msg=denied" in resp.headers["location"]
    assert fake.approvals[1]["state"] == "denied"
    again = client.post("/approvals/ap-1/deny", data={"csrf": csrf}, follow_redirects=False)
    assert "approval_decided" in again.headers["location"]


def test_bot_down_is_said(env: tuple[TestClient, Live], fake: Fake) -> None:
    client, live = env
    login(client)
    fake.bot_up = False
    asyncio.run(live.poll_bot_once())
    html = client.get("/").text
    assert 'id="approvals-bot-down"' in html and "bot API unreachable" in html
    assert 'id="devices-bot-down"' in html
    assert 'data-peer="home-wsl"' in html  # the mesh still shows


def test_audit_pages(env: tuple[TestClient, Live]) -> None:
    client, _ = env
    login(client)
    ok = client.get("/audit/home-wsl").text
    assert '<span id="chain-status" class="badge badge-online">verified</span>' in ok
    broken = client.get("/audit/pi").text
    assert ">broken at seq 2<" in broken and "hash_mismatch" in broken
    assert client.get("/audit/nobody").status_code == 404


def test_devices_and_containers_panels(env: tuple[TestClient, Live]) -> None:
    client, _ = env
    login(client)
    devices = client.get("/panels/devices").text
    assert 'data-device="home-wsl"' in devices and "badge-degraded" in devices
    assert "✓ A" in devices  # system.reboot needs an approval
    containers = client.get("/panels/containers").text
    assert "web" in containers and "deep" in containers and "#cont-web" in containers


def test_hub_event_marks_mesh(env: tuple[TestClient, Live]) -> None:
    _, live = env
    sub = live.subscribe()
    asyncio.run(sub.wait())  # the first wake-up carries every panel
    assert live.handle(json.loads(json.dumps(shapes.PEER_STATS))) is False
    assert sub.pending == {"mesh"}
    assert live.handle({"type": "peer_revoked", "data": {"device_id": "pi"}}) is True


def test_shared_render_gets_each_sessions_csrf(env: tuple[TestClient, Live]) -> None:
    client, live = env
    other = TestClient(client.app, base_url="http://127.0.0.1:8080")
    a, b = login(client), login(other)
    assert a != b
    frag_a, frag_b = client.get("/panels/mesh").text, other.get("/panels/mesh").text
    assert f'value="{a}"' in frag_a and f'value="{b}"' in frag_b and a not in frag_b
    assert "csrf-slot-" not in frag_a
    before = live.versions["mesh"]
    live.notify({"mesh"})
    assert live.versions["mesh"] == before + 1
