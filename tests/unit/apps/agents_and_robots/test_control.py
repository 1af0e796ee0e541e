"""The control API's pure rows, its token check and its routes (with a stand-in bot)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from meshagents.apps.agents_and_robots.approvals import ApprovalBook
from meshagents.apps.agents_and_robots.control import (
    ControlApi,
    DeviceStatus,
    approval_rows,
    device_rows,
    token_ok,
)

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0


def test_approval_rows_pending_first_then_recent_decided() -> None:
    ids = iter(["A00001", "A00002", "A00003"])
    book = ApprovalBook(bot_user_id="@bot:hub", new_id=lambda taken: next(ids))
    book.open(device="home", capability="fs.write", args={"path": "/tmp/x", "content": "y" * 1000},
              requester="@op:hub", now=T0)
    book.open(device="home", capability="fs.write", args={"path": "/tmp/y", "content": ""},
              requester="@op:hub", now=T0 + 3000)
    book.posted("A00002", "$r2")
    book.tick(T0 + 3601)  # A00001 expires
    book.open(device="pi", capability="fs.write", args={"path": "/tmp/z", "content": ""},
              requester="@op:hub", now=T0 + 3700)
    rows = approval_rows(book.all(), {"A00001": "req-1", "A00002": "req-2"}, "!appr:hub")
    assert [(r["approval_id"], r["state"]) for r in rows] == [
        ("A00002", "pending"), ("A00003", "pending"), ("A00001", "expired")]
    first = rows[0]
    assert set(first) >= {"approval_id", "request_id", "device", "capability", "args_preview", "requester",
                          "created_at", "expires_at", "request_event_id", "room_id", "state"}
    assert (first["request_id"], first["request_event_id"], first["room_id"]) == ("req-2", "$r2", "!appr:hub")
    assert first["expires_at"] == int(T0 + 3000 + 3600) and rows[1]["request_id"] is None
    assert "(1000 characters)" in rows[2]["args_preview"]  # long arguments are cut as in the request text
    assert len(approval_rows(book.all(), {}, "!appr:hub", recent=0)) == 2


def test_device_rows() -> None:
    rooms = {"b": ("!b:hub", None), "a": ("!a:hub", "#dev-a:hub"), "c": ("!c:hub", "#dev-c:hub")}
    statuses = {"a": DeviceStatus("degraded", T0 - 10, "weak"), "c": DeviceStatus("ok", T0 - 10_000)}
    rows = device_rows(rooms, statuses, now=T0)
    assert rows == [
        {"device": "a", "room_id": "!a:hub", "room_alias": "#dev-a:hub", "agent_state": "degraded",
         "last_status_ts": int(T0 - 10), "sandbox": "weak"},
        {"device": "b", "room_id": "!b:hub", "room_alias": None, "agent_state": "unknown",
         "last_status_ts": None, "sandbox": None},
        {"device": "c", "room_id": "!c:hub", "room_alias": "#dev-c:hub", "agent_state": "unknown",
         "last_status_ts": int(T0 - 10_000), "sandbox": None},
    ]


def test_help_shows_an_unsandboxed_device() -> None:
    from meshagents.apps.agents_and_robots.help import render_help

    weak = render_help("pi", {}, sandbox="weak")
    assert weak.text.startswith("warning: pi is UNSANDBOXED") and "UNSANDBOXED" in weak.html
    assert "UNSANDBOXED" not in render_help("pi", {}, sandbox="bwrap").text


@pytest.mark.parametrize(
    ("header", "ok"),
    [("Bearer s3cret", True), ("Bearer s3cre", False), ("bearer s3cret", False), (None, False), ("", False),
     ("Bearer ", False)],
)
def test_token_ok(header: str | None, ok: bool) -> None:
    assert token_ok(header, "s3cret") is ok
    assert token_ok(header, "") is False


class StandIn:
    def __init__(self) -> None:
        self.denied: list[str] = []

    def health(self) -> str:
        return "ok"

    def approvals(self) -> list[dict[str, Any]]:
        return [{"approval_id": "A00001", "state": "pending"}]

    def devices_listing(self) -> list[dict[str, Any]]:
        return []

    async def deny(self, approval_id: str) -> str:
        self.denied.append(approval_id)
        return {"A00001": "denied", "A00002": "decided"}.get(approval_id, "not_found")


async def test_routes() -> None:
    bot = StandIn()
    api = ControlApi(bot, "tok")
    async with TestClient(TestServer(api.app())) as client:
        assert (await (await client.get("/healthz")).json()) == {"state": "ok"}
        r = await client.get("/approvals")
        assert r.status == 401 and (await r.json())["error"] == "unauthorized"
        auth = {"Authorization": "Bearer tok"}
        assert (await (await client.get("/approvals", headers=auth)).json())[0]["approval_id"] == "A00001"
        assert (await (await client.get("/devices", headers=auth)).json()) == []
        r = await client.post("/approvals/A00001/deny", headers=auth)
        assert r.status == 200 and (await r.json()) == {"state": "denied"}
        r = await client.post("/approvals/A00002/deny", headers=auth)
        assert r.status == 409 and (await r.json())["error"] == "approval_decided"
        r = await client.post("/approvals/nope/deny", headers=auth)
        assert r.status == 404 and (await r.json())["error"] == "approval_not_found"
        r = await client.get("/approve", headers=auth)
        assert r.status == 404 and (await r.json())["error"] == "not_found"
        r = await client.post("/approvals/A00001/approve", headers=auth)
        assert r.status in (404, 405)  # there is no approve endpoint
    assert bot.denied == ["A00001", "A00002", "nope"]
