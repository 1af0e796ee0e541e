"""Session cookies and CSRF tokens; the SSE parser; client error mapping."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.apps.agents_dashboard.clients import BotClient, HubClient, SSEParser
from meshagents.apps.agents_dashboard.config import DashConfig, load_token
from meshagents.apps.agents_dashboard.sessions import SessionStore
from meshagents.errors import FnError

pytestmark = pytest.mark.unit


def test_session_roundtrip_and_expiry() -> None:
    store = SessionStore(b"k" * 32, ttl_s=10)
    cookie = store.create(now=100)
    s = store.get(cookie, now=105)
    assert s is not None and store.check_csrf(s, s.csrf) and not store.check_csrf(s, "x")
    assert not store.check_csrf(s, None)
    assert store.get(cookie, now=111) is None
    assert len(store) == 0


@given(st.text(min_size=1, max_size=80))
def test_forged_cookies_refused(junk: str) -> None:
    store = SessionStore(b"k" * 32)
    good = store.create()
    sid = good.split(".")[0]
    assert store.get(junk) is None or junk == good
    assert store.get(f"{sid}.{junk}") is None or junk == good.split(".")[1]


def test_other_secret_refuses_cookie() -> None:
    a, b = SessionStore(b"a" * 32), SessionStore(b"b" * 32)
    assert b.get(a.create()) is None


def test_sessions_bounded_and_drop() -> None:
    store = SessionStore(max_sessions=3)
    cookies = [store.create(now=float(i)) for i in range(5)]
    assert len(store) == 3 and store.get(cookies[0], now=5) is None
    store.drop(cookies[-1])
    assert store.get(cookies[-1], now=5) is None


def test_sse_parser() -> None:
    p = SSEParser()
    lines = [": ping", "event: peer_stats", "id: 4", 'data: {"a":', "data: 1}", ""]
    out = [e for e in (p.feed(x) for x in lines) if e is not None]
    assert out == [{"event": "peer_stats", "data": '{"a":\n1}', "id": "4"}]
    assert p.feed("") is None
    assert p.feed("data:x") is None and p.feed("\r\n") == {"event": "message", "data": "x", "id": "4"}


def test_client_errors_mapped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/peers/x/revoke":
            return httpx.Response(404, json={"error": "peer_unknown", "message": "no peer 'x'"})
        if request.url.path == "/api/peers":
            return httpx.Response(200, text="not json")
        raise httpx.ConnectError("refused", request=request)

    hub = HubClient("http://hub", "t", transport=httpx.MockTransport(handler))
    bot = BotClient("http://bot", "t", transport=httpx.MockTransport(handler))

    async def run() -> list[str]:
        codes = []
        for coro in (hub.revoke("x"), hub.peers(), bot.approvals(), hub.audit("a/b")):
            try:
                await coro
            except FnError as exc:
                codes.append(exc.code)
        return codes

    assert asyncio.run(run()) == ["peer_unknown", "hub_bad_answer", "bot_unreachable", "hub_unreachable"]


def test_token_file_must_be_private(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "tok"
    f.write_text("secret-token\n")
    f.chmod(0o644)
    with pytest.raises(FnError) as err:
        load_token(DashConfig(token_file=f))
    assert err.value.code == "config_invalid"
    f.chmod(0o600)
    assert load_token(DashConfig(token_file=f)) == "secret-token"


def test_config_checks() -> None:
    with pytest.raises(FnError):
        DashConfig(port=0)
    with pytest.raises(FnError):
        DashConfig(stale_after_s=0)
