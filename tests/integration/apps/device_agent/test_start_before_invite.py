"""An agent started before the bot has invited its user into #operator-approvals waits
for the invite and then starts; it does not fail its start (a restart loop under systemd)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshagents.apps.device_agent.agent import DeviceAgent
from tests.testbed.agent_rig import make_rig
from tests.testbed.agent_world import FAST, MakeWorld

pytestmark = pytest.mark.integration


async def test_the_agent_waits_for_its_approvals_invite(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    user, password = world.synapse.new_user("dev")
    room = await world.operator.create_room(name=f"dev {user}", invite=[world.bot.user_id, user])
    rig = make_rig(
        tmp_path / "a", approvers=[world.operator.user_id], homeserver=world.synapse.url, matrix_user=user,
        matrix_password=password, device_room=room, approvals_room=world.approvals_room,
        bot_users=[world.bot.user_id],
    )  # fmt: skip
    agent = DeviceAgent(rig.config, **FAST)
    world.agents.append(agent)
    start = asyncio.create_task(agent.start(start_timeout=60))
    await asyncio.sleep(3)  # several join attempts without an invite
    assert not start.done(), start  # still waiting: not failed
    await world.operator.nio_client.room_invite(world.approvals_room, user)
    await asyncio.wait_for(start, 60)
    await world.operator.wait_for_member(world.approvals_room, user)
    assert agent.state == "ok"
