"""A client restarted in the middle of a conversation does not handle old messages again."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from meshagents.matrix.client import Incoming, MatrixClient
from tests.testbed.matrix_clients import MakeClient

pytestmark = pytest.mark.integration


async def _collect(client: MatrixClient) -> asyncio.Queue[Incoming]:
    q: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await q.put(ev)

    client.on_message(put)
    return q


async def _drain(q: asyncio.Queue[Incoming], settle: float = 1.5) -> list[str]:
    out: list[str] = []
    while True:
        try:
            ev = await asyncio.wait_for(q.get(), settle)
        except TimeoutError:
            return out
        out.append(ev.body or "")


async def test_restart_mid_conversation(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bot = await make_client("bot", operators=(alice.user_id,), start=False)
    seen = await _collect(bot)
    await bot.start()
    room = await alice.create_room(invite=[bot.user_id])
    await alice.wait_for_member(room, bot.user_id)
    await alice.send_text(room, "one")
    await alice.send_text(room, "two")
    assert await _drain(seen) == ["one", "two"]

    # Stop in the middle of the conversation; a message arrives while it is down.
    store, user = bot.config.store_dir, (bot.user_id, bot.config.password)
    await bot.stop()
    # More than Synapse's default sync window (10) queue up while it is down.
    queued = [f"q{i}" for i in range(14)]
    for body in queued:
        await alice.send_text(room, body)
    bot2 = await make_client(user=user, store=store, operators=(alice.user_id,), start=False)
    seen2 = await _collect(bot2)
    await bot2.start()
    await alice.send_text(room, "four")
    assert await _drain(seen2) == [*queued, "four"]
    # The restarted client knows its rooms again (nio keeps no room state) and can send.
    alice_seen = await _collect(alice)
    await bot2.send_text(room, "back")
    assert await _drain(alice_seen) == ["back"]

    # Even with the saved sync token lost (a crash before nio saved it), the handled-events
    # table keeps old messages from being handled again.
    await bot2.stop()
    for db in (store / "nio").glob("*.db"):
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM synctokens")
    bot3 = await make_client(
        user=user, store=store, operators=(alice.user_id,), handle_backlog=True, start=False
    )
    seen3 = await _collect(bot3)
    await bot3.start()
    await alice.send_text(room, "five")
    assert await _drain(seen3) == ["five"]
