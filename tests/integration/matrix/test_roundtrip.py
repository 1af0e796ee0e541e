"""E2EE round trip between two clients built on the base."""

from __future__ import annotations

import asyncio

import nio
import pytest

from meshagents.matrix.client import Incoming
from tests.testbed.matrix_clients import MakeClient

pytestmark = pytest.mark.integration


async def test_e2ee_round_trip(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bot = await make_client("bot", operators=(alice.user_id,))
    got_bot: asyncio.Queue[Incoming] = asyncio.Queue()
    got_alice: asyncio.Queue[Incoming] = asyncio.Queue()

    async def bot_echo(ev: Incoming) -> None:
        await got_bot.put(ev)
        await bot.send_notice(ev.room_id, f"echo {ev.body}", reply_to=ev.event_id)

    async def alice_got(ev: Incoming) -> None:
        await got_alice.put(ev)

    bot.on_message(bot_echo)
    alice.on_message(alice_got)
    room = await alice.create_room(invite=[bot.user_id])
    await alice.wait_for_member(room, bot.user_id)
    sent = await alice.send_text(room, "hello")
    ev = await asyncio.wait_for(got_bot.get(), 10)
    assert ev.event_id == sent and ev.body == "hello"
    assert ev.decrypted and ev.verified and ev.sender_device == alice.device_id
    reply = await asyncio.wait_for(got_alice.get(), 10)
    assert reply.decrypted and reply.body == "echo hello"
    assert reply.content["msgtype"] == "m.notice"
    assert reply.relates_to is None  # a reply uses m.in_reply_to, not a relation key
    assert reply.content["m.relates_to"]["m.in_reply_to"]["event_id"] == sent
    # The bot is not an operator for alice: its messages decrypt but are not "verified".
    assert not reply.verified


async def test_custom_event_encrypted(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    dev = await make_client("dev", operators=(alice.user_id,), start=False)
    got: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await got.put(ev)

    dev.on_custom_event("org.meshagents.test", put)
    await dev.start()
    room = await alice.create_room(invite=[dev.user_id])
    await alice.wait_for_member(room, dev.user_id)
    sent = await alice.send_custom(room, "org.meshagents.test", {"request_id": "r1", "n": 3})
    ev = await asyncio.wait_for(got.get(), 10)
    assert (ev.event_id, ev.type, ev.content, ev.decrypted, ev.verified) == (
        sent,
        "org.meshagents.test",
        {"request_id": "r1", "n": 3},
        True,
        True,
    )


async def test_kick_removes_member(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    dev = await make_client("dev", operators=(alice.user_id,))
    room = await alice.create_room(invite=[dev.user_id])
    await alice.wait_for_member(room, dev.user_id)
    await alice.kick(room, dev.user_id, "revoked")
    members = await alice.nio_client.joined_members(room)
    assert dev.user_id not in [m.user_id for m in members.members]
    await alice.kick(room, dev.user_id, "revoked")  # already gone: no error


async def test_oversized_event_has_its_own_error(make_client: MakeClient) -> None:
    from meshagents.errors import FnError

    alice = await make_client("alice")
    room = await alice.create_room()
    await alice.send_custom(room, "org.meshagents.test", {"output": "z" * 40_000})
    with pytest.raises(FnError) as err:  # 50 kB of text is over 64 KiB once encrypted
        await alice.send_custom(room, "org.meshagents.test", {"output": "z" * 50_000})
    assert err.value.code == "matrix_event_too_large"


async def test_a_client_can_leave_its_own_events_out_of_its_syncs(make_client: MakeClient) -> None:
    alice = await make_client("alice")  # the default: her own events come back in her syncs
    dev = await make_client("dev", operators=(alice.user_id,), sync_own_events=False)
    seen: dict[str, list[str]] = {alice.user_id: [], dev.user_id: []}
    last = {alice.user_id: asyncio.Event(), dev.user_id: asyncio.Event()}
    for who in (alice, dev):
        async def record(_room: nio.MatrixRoom, ev: nio.Event, who: str = who.user_id) -> None:
            seen[who].append(ev.event_id)
            if getattr(ev, "body", None) == "last":
                last[who].set()

        who.nio_client.add_event_callback(record, nio.Event)
    room = await alice.create_room(invite=[dev.user_id])
    await alice.wait_for_member(room, dev.user_id)
    mine = await dev.send_notice(room, "from dev")
    theirs = await alice.send_text(room, "last")
    for user in seen:
        await asyncio.wait_for(last[user].wait(), 10)
    assert theirs in seen[dev.user_id] and mine not in seen[dev.user_id]
    assert {mine, theirs} <= set(seen[alice.user_id])
