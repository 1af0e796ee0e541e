"""A real Synapse, an operator and a stand-in bot on the Matrix client base, and device
agents in their own rooms. The "bot" here only carries envelopes that the test signs
with the trust core (tests/testbed/agent_rig.py) and posts approval requests; the
operator cross-signs itself and reacts 👍 as Element would.

    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a")       # started DeviceAgent
    cmd = await world.command(rig, "!exec ls")              # operator's message (reply_to)
    await world.send(rig, rig.content(..., reply_to=cmd))   # the bot posts the envelope
    result, notice = await world.result(rig, request_id)    # what the agent answered
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshagents.apps.device_agent.agent import DeviceAgent
from meshagents.bus import ENVELOPE_EVENT, STATUS_EVENT, approval_request_content
from meshagents.matrix.client import Incoming, MatrixClient
from meshagents.matrix.rooms import approvals_power_levels
from meshagents.trust.approval import make_binding
from meshagents.trust.models import Envelope
from tests.testbed.agent_rig import Rig, make_rig
from tests.testbed.results import on_results
from tests.testbed.synapse import SynapseServer, synapse  # noqa: F401 - re-exported fixture

FAST = {"backoff_max": 1.0, "sync_timeout_ms": 3_000}


@dataclass
class World:
    synapse: SynapseServer
    root: Path
    operator: MatrixClient
    bot: MatrixClient
    approvals_room: str
    clients: list[MatrixClient] = field(default_factory=list)
    agents: list[DeviceAgent] = field(default_factory=list)
    rooms: dict[str, str] = field(default_factory=dict)  # device id -> room id
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # device id -> (user, password)
    results: dict[str, Inbox] = field(default_factory=dict)  # room -> result events
    notices: dict[str, Inbox] = field(default_factory=dict)  # room -> m.notice events
    statuses: dict[str, Inbox] = field(default_factory=dict)  # room -> status events

    async def client(self, prefix: str, **kw: Any) -> MatrixClient:
        user, password = self.synapse.new_user(prefix)
        c = MatrixClient(
            self.synapse.client_config(
                user, password, self.root / f"store-{user[1:8]}-{prefix}", **{**FAST, **kw}
            )
        )
        self.clients.append(c)
        await c.start()
        return c

    async def add_agent(self, root: Path, **rig_kw: Any) -> tuple[DeviceAgent, Rig]:
        user, password = self.synapse.new_user("dev")
        room = await self.operator.create_room(name=f"dev {user}", invite=[self.bot.user_id, user])
        await self.operator.nio_client.room_invite(self.approvals_room, user)
        rig = make_rig(
            root,
            approvers=[self.operator.user_id],
            homeserver=self.synapse.url,
            matrix_user=user,
            matrix_password=password,
            device_room=room,
            approvals_room=self.approvals_room,
            bot_users=[self.bot.user_id],
            **rig_kw,
        )
        self.rooms[rig.device_id] = room
        self.users[rig.device_id] = (user, password)
        self.results[room] = Inbox()
        self.notices[room] = Inbox()
        self.statuses[room] = Inbox()
        await self.operator.wait_for_member(room, self.bot.user_id)
        agent = await self.start_agent(rig)
        return agent, rig

    async def start_agent(self, rig: Rig) -> DeviceAgent:
        agent = DeviceAgent(rig.config, **FAST)
        self.agents.append(agent)
        await agent.start(start_timeout=30)
        user = self.users[rig.device_id][0]
        room = self.rooms[rig.device_id]
        await self.bot.wait_for_member(room, user)
        await self.operator.wait_for_member(room, user)
        await self.operator.wait_for_member(self.approvals_room, user)
        return agent

    async def wait_joined(self, rig: Rig) -> None:
        user = self.users[rig.device_id][0]
        await self.bot.wait_for_member(self.rooms[rig.device_id], user, timeout=30)

    async def command(self, rig: Rig, text: str) -> str:
        return await self.operator.send_text(self.rooms[rig.device_id], text)

    async def send(self, rig: Rig, content: dict[str, Any]) -> str:
        return await self.bot.send_custom(self.rooms[rig.device_id], ENVELOPE_EVENT, content)

    async def result(self, rig: Rig, request_id: str, timeout: float = 30) -> tuple[Incoming, Incoming]:
        room = self.rooms[rig.device_id]
        res = await self.results[room].wait(lambda e: e.content.get("request_id") == request_id, timeout)
        notice = await self.notices[room].wait(lambda e: f"[{request_id}]" in (e.body or ""), timeout)
        return res, notice

    async def request_approval(
        self,
        rig: Rig,
        env: dict[str, Any],
        approval_id: str = "apr001",
        *,
        sender: MatrixClient | None = None,
        body: str | None = None,
        **binding: Any,
    ) -> str:
        """R as the bot posts it (the trust core's binding and rendering); ``binding``
        overrides a field of the binding, ``body`` the rendered text, ``sender`` the bot."""
        envelope = Envelope.model_validate(env)
        fields: dict[str, Any] = {
            "approval_id": approval_id,
            "request_id": envelope.request_id,
            "device_id": rig.device_id,
            "capability": envelope.capability,
            "args": envelope.args,
            "deadline": envelope.expires_at + 600,
            "requester": self.operator.user_id,
        }
        fields.update(binding)
        content = approval_request_content(make_binding(**fields), fields["args"])
        if body is not None:
            content["body"] = body
            content.pop("formatted_body", None)
        return await (sender or self.bot).send_custom(self.approvals_room, "m.room.message", content)

    async def react(self, who: MatrixClient, event_id: str, key: str = "👍") -> str:
        return await who.send_reaction(self.approvals_room, event_id, key, encrypted=True)


class Inbox:
    """Events kept in arrival order; ``wait`` takes the first that matches (others stay)."""

    def __init__(self) -> None:
        self.events: list[Incoming] = []
        self._changed = asyncio.Event()

    async def put(self, ev: Incoming) -> None:
        self.events.append(ev)
        self._changed.set()

    async def wait(self, match: Callable[[Incoming], bool], timeout: float = 30) -> Incoming:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if match(ev):
                    return self.events.pop(i)
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - loop.time()))


MakeWorld = Callable[[], Awaitable[World]]


@pytest.fixture
async def make_world(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[MakeWorld]:  # noqa: F811
    worlds: list[World] = []

    async def make() -> World:
        op_user, op_pw = synapse.new_user("operator")
        operator = MatrixClient(synapse.client_config(op_user, op_pw, tmp_path / "operator-store", **FAST))
        bot_user, bot_pw = synapse.new_user("bot")
        bot = MatrixClient(
            synapse.client_config(bot_user, bot_pw, tmp_path / "bot-store", operators=(op_user,), **FAST)
        )
        await operator.start()
        await bot.start()
        approvals = await operator.create_room(
            name="operator-approvals", invite=[bot_user],
            power_levels=approvals_power_levels([op_user], bot_user),
        )
        await operator.wait_for_member(approvals, bot_user)
        world = World(synapse, tmp_path, operator, bot, approvals, clients=[operator, bot])
        worlds.append(world)

        async def on_custom(ev: Incoming) -> None:
            q = world.results.get(ev.room_id)
            if q is not None:
                await q.put(ev)

        async def on_message(ev: Incoming) -> None:
            q = world.notices.get(ev.room_id)
            if q is not None and ev.content.get("msgtype") == "m.notice":
                await q.put(ev)

        async def on_status(ev: Incoming) -> None:
            q = world.statuses.get(ev.room_id)
            if q is not None:
                await q.put(ev)

        on_results(operator, on_custom)
        operator.on_custom_event(STATUS_EVENT, on_status)
        operator.on_message(on_message)
        return world

    yield make
    for world in worlds:
        for agent in world.agents:
            await agent.stop()
        for c in world.clients:
            await c.stop()
