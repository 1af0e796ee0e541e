"""The agent's syncs leave out its own events (its answers do not wake its long poll),
and it still acts on every envelope of its room, whoever sends it: an envelope is
self-verifying (its signature, not its Matrix sender, carries the trust), so the filter
names only the agent's own user."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nio
import pytest

from meshagents.bus import ENVELOPE_EVENT
from tests.testbed.agent_world import MakeWorld

pytestmark = pytest.mark.integration


async def test_agent_syncs_skip_its_own_events_and_serve_every_sender(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a")
    room = world.rooms[rig.device_id]
    seen: list[nio.Event] = []
    later = asyncio.Event()

    async def record(_room: nio.MatrixRoom, ev: nio.Event) -> None:
        seen.append(ev)
        if getattr(ev, "body", None) == "a later event":
            later.set()

    agent.client.nio_client.add_event_callback(record, nio.Event)
    by_bot = rig.content("shell.exec.sh", {"argv": ["sh", "-c", "true"]})
    await world.send(rig, by_bot)
    res_bot, notice_bot = await world.result(rig, by_bot["envelope"]["request_id"])
    by_operator = rig.content("shell.exec.sh", {"argv": ["sh", "-c", "true"]})
    await world.operator.send_custom(room, ENVELOPE_EVENT, by_operator)
    res_op, notice_op = await world.result(rig, by_operator["envelope"]["request_id"])
    assert res_bot.content["status"] == res_op.content["status"] == "ok", (res_bot.content, res_op.content)
    # someone else's event after the answers: the agent's syncs have passed them by then
    await world.operator.send_text(room, "a later event")
    await asyncio.wait_for(later.wait(), 30)
    ids = {ev.event_id for ev in seen}
    answers = {res_bot.event_id, notice_bot.event_id, res_op.event_id, notice_op.event_id}
    assert not answers & ids, "the agent's own answers came back in its syncs"
    assert not any(ev.sender == agent.client.user_id for ev in seen)
    assert {world.bot.user_id, world.operator.user_id} <= {ev.sender for ev in seen}
