"""Synapse stopped and started again: the client goes degraded, then recovers by itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from meshagents.matrix.client import Incoming, MatrixClient
from tests.testbed.matrix_clients import MakeClient
from tests.testbed.synapse import SynapseServer

pytestmark = pytest.mark.integration


async def _wait_state(client: MatrixClient, state: str, timeout: float) -> float:
    t0 = time.monotonic()
    while client.state != state:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{client.user_id} stayed {client.state}, wanted {state}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def test_degraded_then_recovers(synapse: SynapseServer, make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bot = await make_client("bot", operators=(alice.user_id,), start=False)
    got: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await got.put(ev)

    bot.on_message(put)
    await bot.start()
    room = await alice.create_room(invite=[bot.user_id])
    await alice.wait_for_member(room, bot.user_id)
    assert bot.state == "ok"

    late = await make_client("late", start=False)  # registered now, started during the outage
    synapse.stop()
    try:
        await _wait_state(bot, "degraded", 10)
        await _wait_state(alice, "degraded", 10)
        late_start = asyncio.create_task(late.start(wait=True))
        await _wait_state(late, "degraded", 10)
    finally:
        synapse.start()
    await _wait_state(bot, "ok", 15)
    await _wait_state(alice, "ok", 15)
    await asyncio.wait_for(late_start, 15)
    assert late.state == "ok"
    await alice.send_text(room, "after the outage")
    ev = await asyncio.wait_for(got.get(), 10)
    assert ev.body == "after the outage" and ev.verified
