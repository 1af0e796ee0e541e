"""Encrypted and plain reactions both arrive, flagged decrypted or not; events from a
device that is not cross-signed are never counted as verified."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nio
import pytest

from meshagents.matrix.client import Incoming
from tests.testbed.matrix_clients import MakeClient
from tests.testbed.synapse import SynapseServer

pytestmark = pytest.mark.integration


async def test_reactions_encrypted_and_plain(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bot = await make_client("bot", operators=(alice.user_id,), start=False)
    reactions: asyncio.Queue[Incoming] = asyncio.Queue()
    messages: asyncio.Queue[Incoming] = asyncio.Queue()

    async def on_reaction(ev: Incoming) -> None:
        await reactions.put(ev)

    async def on_message(ev: Incoming) -> None:
        await messages.put(ev)

    bot.on_reaction(on_reaction)
    bot.on_message(on_message)
    await bot.start()
    room = await alice.create_room(invite=[bot.user_id])
    await alice.wait_for_member(room, bot.user_id)
    target = await alice.send_text(room, "approve me")
    await asyncio.wait_for(messages.get(), 10)

    await alice.send_reaction(room, target, "👍", encrypted=True)
    enc = await asyncio.wait_for(reactions.get(), 10)
    assert (enc.decrypted, enc.verified, enc.reaction_key, enc.relates_to) == (True, True, "👍", target)
    assert bot.is_verified_sender(enc.event)

    await alice.send_reaction(room, target, "👎", encrypted=False)
    plain = await asyncio.wait_for(reactions.get(), 10)
    assert (plain.decrypted, plain.verified, plain.reaction_key) == (False, False, "👎")
    assert not bot.is_verified_sender(plain.event)

    # Fetched again from the server (as a device checks an approval): same verdicts.
    again = await bot.get_event(room, enc.event_id)
    assert (again.decrypted, again.verified, again.reaction_key, again.sender_device) == (
        True,
        True,
        "👍",
        alice.device_id,
    )
    assert not (await bot.get_event(room, plain.event_id)).verified


async def test_not_cross_signed_device_is_not_verified(
    synapse: SynapseServer, make_client: MakeClient, tmp_path: Path
) -> None:
    alice = await make_client("alice")
    eve_user = synapse.new_user("eve")  # an operator too, but her devices are never cross-signed
    bot = await make_client("bot", operators=(alice.user_id, eve_user[0]), start=False)
    messages: asyncio.Queue[Incoming] = asyncio.Queue()

    async def on_message(ev: Incoming) -> None:
        await messages.put(ev)

    bot.on_message(on_message)
    await bot.start()
    room = await alice.create_room(invite=[bot.user_id, eve_user[0]])
    await alice.wait_for_member(room, bot.user_id)

    # A second device of alice's own account, logged in with bare nio: alice has
    # cross-signing keys, but this device is not signed by them.
    async def bare(user: str, password: str, name: str) -> nio.AsyncClient:
        store = tmp_path / name
        store.mkdir()
        c = nio.AsyncClient(
            synapse.url,
            user,
            store_path=str(store),
            config=nio.AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True),
        )
        assert isinstance(await c.login(password, device_name=name), nio.LoginResponse)
        await c.keys_upload()
        await c.sync(timeout=0)
        return c

    alice2 = await bare(alice.user_id, alice.config.password, "alice-bare")
    eve = await bare(*eve_user, "eve-bare")
    try:
        await eve.join(room)
        await alice.wait_for_member(room, eve_user[0])
        await bot.wait_for_member(room, eve_user[0])
        for c in (alice2, eve):
            await c.sync(timeout=0)
            await c.joined_members(room)
            await c.keys_query()
        await alice2.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "from bare alice"},
            ignore_unverified_devices=True,
        )
        await eve.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": "from eve"}, ignore_unverified_devices=True
        )
        await alice.send_text(room, "from alice")
        got = {}
        for _ in range(3):
            ev = await asyncio.wait_for(messages.get(), 10)
            got[ev.body] = ev
        assert all(ev.decrypted for ev in got.values())
        assert got["from alice"].verified
        assert not got["from bare alice"].verified
        assert got["from bare alice"].sender_device == alice2.device_id
        assert not got["from eve"].verified

        # The bot shares its room keys only with cross-signed devices (MSC4153).
        await bot.send_text(room, "secret")
        dev = bot.nio_client.device_store[alice.user_id][alice2.device_id]
        assert dev.blacklisted
        assert bot.nio_client.device_store[alice.user_id][alice.device_id].verified
    finally:
        await alice2.close()
        await eve.close()


async def test_operator_identity_reset_is_refused(make_client: MakeClient) -> None:
    """The operator's master key is pinned on first verified sight; a new identity (new
    seeds, uploaded with password auth) makes their messages unverified and raises an alert."""
    alice = await make_client("alice")
    bot = await make_client("bot", operators=(alice.user_id,), start=False)
    got: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await got.put(ev)

    bot.on_message(put)
    await bot.start()
    room = await alice.create_room(invite=[bot.user_id])
    await alice.wait_for_member(room, bot.user_id)
    await alice.send_text(room, "before")
    assert (await asyncio.wait_for(got.get(), 10)).verified

    await alice.stop()
    (alice.config.store_dir / "cross_signing.json").unlink()
    alice2 = await make_client(user=(alice.user_id, alice.config.password), store=alice.config.store_dir)
    await alice2.send_text(room, "after reset")
    ev = await asyncio.wait_for(got.get(), 10)
    assert ev.body == "after reset" and ev.decrypted and not ev.verified
    assert any("master key" in a for a in bot.trust_alerts)
