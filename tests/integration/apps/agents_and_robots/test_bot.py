"""The bot on a real Synapse: refusals, dispatch, approvals, expiry, the control API,
replays and revocation (see conftest.py for the world)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshagents.apps.agents_and_robots import config as bot_config
from meshagents.apps.agents_and_robots.core import DASHBOARD
from meshagents.apps.agents_and_robots.directory import HubApi
from meshagents.bus import APPROVAL_REQUEST_KEY, ENVELOPE_EVENT, RESULT_KEY, STATUS_EVENT, ResultEvent
from meshagents.errors import FnError
from meshagents.trust.keystore import open_keystore
from tests.testbed.bot_world import MakeWorld, StandInHub
from tests.testbed.synapse import SynapseServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_refusal_dispatch_and_strangers(make_world: MakeWorld) -> None:
    world = await make_world()
    room, approvals = world.device_room, world.approvals_room

    # the manifest forbids rm: an answer at once, an alert, a refused row
    cmd = await world.say("!exec rm -rf /tmp/x")
    refusal = await world.notice(room, lambda t: t == "capability rejected: shell.exec.rm not in manifest")
    assert refusal.content["msgtype"] == "m.notice"
    assert refusal.content["m.relates_to"]["m.in_reply_to"]["event_id"] == cmd
    await world.notice(approvals, lambda t: "refused shell.exec.rm" in t and world.name in t)
    row = world.latest_row()
    assert (row.status, row.capability, row.sender) == ("refused", "shell.exec.rm", world.operator.user_id)

    # decide() on the signed manifest refuses a path outside its prefixes (no approval asked)
    await world.say("!exec ls /etc")
    await world.notice(room, lambda t: t.startswith("rejected_args:"))

    # allowed: a signed envelope the device's trust core accepts, and its result recorded
    cmd = await world.say("!exec ls /tmp")
    rid = (await world.envelope_for(cmd)).content["envelope"]["request_id"]
    row = await world.row(rid, "ok")
    assert row.capability == "shell.exec.ls" and row.device == world.name
    assert world.device.results[-1]["status"] == "ok"

    # a stranger in the device room: refused, alerted, nothing sent
    before = len(world.envelopes)
    await world.say("!exec ls /tmp", who=world.stranger)
    await world.notice(room, lambda t: t.startswith("refused:") and world.stranger.user_id in t)
    await world.notice(approvals,
                       lambda t: t.startswith("alert: refused a command") and world.stranger.user_id in t)
    assert len(world.envelopes) == before

    # the directory's revoked mark (what the hub reports) answers peer_revoked within the poll interval
    (world.manifests / f"{world.name}.revoked").write_text("revoked\n")
    await asyncio.sleep(world.shell.cfg.poll_s * 2 + 0.2)
    await world.say("!exec ls /tmp")
    await world.notice(room, lambda t: t == f"peer_revoked: {world.name} is revoked; nothing was sent")
    assert world.latest_row().status == "peer_revoked"


async def test_approvals_count_only_operators_and_the_dashboard_can_deny(make_world: MakeWorld) -> None:
    world = await make_world()
    room, approvals = world.device_room, world.approvals_room
    bot = world.shell.client
    # the stranger may read #operator-approvals (a mistake an admin could make): their vote must not count
    await bot.nio_client.room_invite(approvals, world.stranger.user_id)
    await bot.wait_for_member(approvals, world.stranger.user_id, timeout=30)

    cmd = await world.say("!exec echo hello")
    waiting = await world.notice(room, lambda t: t.startswith("waiting for approval "))
    approval_id = waiting.body.split()[3]  # type: ignore[union-attr]
    req = await world.request()
    data = req.content[APPROVAL_REQUEST_KEY]
    assert data["approval_id"] == approval_id and data["device_id"] == world.name
    assert data["capability"] == "shell.exec.echo" and data["deadline"] > 0
    assert req.content["body"].count(data["binding"]) == 1  # the digest the text shows
    rid = data["request_id"]
    assert (await world.row(rid, "pending_approval")).approval_id == approval_id

    # the bot made the room so that members it did not name cannot post there at all ...
    with pytest.raises(FnError):
        await world.stranger.send_reaction(approvals, req.event_id, "👍")
    # ... and where an admin lets them (a mistake), neither the stranger's 👍 nor the bot's own counts
    levels = await bot.nio_client.room_get_state_event(approvals, "m.room.power_levels")
    raised = {**levels.content, "users": {**levels.content["users"], world.stranger.user_id: 50}}
    await bot.nio_client.room_put_state(approvals, "m.room.power_levels", raised)
    await world.stranger.send_reaction(approvals, req.event_id, "👍")
    await world.notice(approvals, lambda t: t.startswith(f"alert: ignored approval of request {approval_id}")
                       and world.stranger.user_id in t)
    await bot.send_reaction(approvals, req.event_id, "👍")
    # an operator's approval the device could not check (lower-case id): a hint, not a vote
    await world.say(f"!approve {approval_id.lower()}", room=approvals)
    await world.notice(approvals, lambda t: t.startswith(f"to approve, write exactly !approve {approval_id}"))
    await asyncio.sleep(1.0)
    assert world.store().get(rid).status == "pending_approval"  # type: ignore[union-attr]
    assert not [e for e in world.envelopes if e.content.get("reply_to") == cmd]

    # the operator's 👍 decides; the device accepts the approval it looked up itself
    thumb = await world.operator.send_reaction(approvals, req.event_id, "👍")
    content = (await world.envelope_for(cmd, "the approved envelope")).content
    assert content["envelope"]["approval"] == thumb and content["approval_request_event"] == req.event_id
    row = await world.row(rid, "ok")
    assert row.approval_event_id == thumb
    await world.notice(room, lambda t: t.startswith(f"approved {approval_id} by {world.operator.user_id}"))

    # the control API: a pending request is listed; a deny through it is honoured
    shell = world.shell
    host, port = shell.control_bound[0]
    base = f"http://{host}:{port}"
    auth = {"Authorization": f"Bearer {shell.cfg.control_token}"}
    await world.say("!exec echo second")
    second = await world.notice(room,
                                lambda t: t.startswith("waiting for approval ") and approval_id not in t)
    second_id = second.body.split()[3]  # type: ignore[union-attr]
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(base + "/healthz")).json() == {"state": "ok"}
        assert (await http.get(base + "/approvals")).status_code == 401
        bad = await http.get(base + "/approvals", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
        listed = (await http.get(base + "/approvals", headers=auth)).json()
        assert listed[0]["approval_id"] == second_id and listed[0]["state"] == "pending"
        assert listed[0]["device"] == world.name and listed[0]["room_id"] == approvals
        assert {"approval_id", "request_id", "device", "capability", "args_preview", "requester",
                "created_at", "expires_at", "request_event_id", "room_id", "state"} <= set(listed[0])
        assert any(a["approval_id"] == approval_id and a["state"] == "approved" for a in listed)
        denied = await http.post(base + f"/approvals/{second_id.lower()}/deny", headers=auth)
        assert denied.status_code == 200 and denied.json() == {"state": "denied"}
        again = await http.post(base + f"/approvals/{second_id}/deny", headers=auth)
        assert again.status_code == 409 and again.json()["error"] == "approval_decided"
        missing = await http.post(base + "/approvals/ZZZZZZ/deny", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"] == "approval_not_found"
        devices = (await http.get(base + "/devices", headers=auth)).json()
        assert devices == [{"device": world.name, "room_id": room, "room_alias": f"#dev-{world.name}:"
                            f"{world.synapse.server_name}", "agent_state": "unknown", "last_status_ts": None,
                            "sandbox": None}]
    await world.notice(room, lambda t: t == f"denied {second_id} by {DASHBOARD}; nothing ran")
    await world.notice(approvals, lambda t: t.startswith(f"denied {second_id}") and DASHBOARD in t)
    denied_row = world.store().by_approval(second_id)
    assert denied_row is not None and denied_row.status == "denied"
    # a vote after the decision changes nothing
    await world.say(f"!approve {second_id}", room=approvals)
    await world.notice(approvals, lambda t: t == f"request {second_id} is already denied")


async def test_pending_requests_expire(make_world: MakeWorld) -> None:
    world = await make_world(approval_ttl_s=2.0)
    await world.say("!exec echo late")
    waiting = await world.notice(world.device_room, lambda t: t.startswith("waiting for approval "))
    approval_id = waiting.body.split()[3]  # type: ignore[union-attr]
    await world.notice(world.device_room, lambda t: t == f"request {approval_id} expired without approval; "
                       "nothing ran")
    await world.notice(world.approvals_room, lambda t: t.startswith(f"expired {approval_id}"))
    row = world.store().by_approval(approval_id)
    assert row is not None and row.status == "expired"
    req = await world.request()
    await world.operator.send_reaction(world.approvals_room, req.event_id, "👍")
    await asyncio.sleep(1.5)
    assert not world.envelopes  # nothing was ever sent


async def test_replay_alert_and_revoke(make_world: MakeWorld) -> None:
    world = await make_world()
    room, approvals = world.device_room, world.approvals_room
    cmd = await world.say("!exec ls /tmp")
    env = await world.envelope_for(cmd)
    rid = env.content["envelope"]["request_id"]
    await world.row(rid, "ok")
    # someone re-sends the very same signed envelope: the device refuses it, the bot alerts
    await world.operator.send_custom(room, ENVELOPE_EVENT, dict(env.content))
    await world.notice(approvals, lambda t: f"refused request {rid} as a replay (rejected_nonce)" in t)
    assert world.device.results[-1]["status"] == "rejected_nonce"
    assert world.store().get(rid).status == "ok"  # type: ignore[union-attr]  # the first answer stands

    # !revoke in two steps; then the device answers peer_revoked and its user is out of its rooms
    await world.say(f"!revoke {world.name} --confirm ABCDEF", room=approvals)
    await world.notice(approvals, lambda t: t.startswith(f"no revoke of {world.name} to confirm"))
    await world.say(f"!revoke {world.name}", room=approvals)
    ask = await world.notice(approvals, lambda t: t.startswith(f"revoking {world.name} removes"))
    code = (ask.body or "").rsplit("--confirm", 1)[1].split()[0]
    await world.say(f"!revoke {world.name} --confirm {code}", room=approvals)
    await world.notice(approvals, lambda t: t.startswith(f"revoked {world.name}"))
    assert (world.manifests / f"{world.name}.revoked").exists()
    await world.say("!exec ls /tmp")
    await world.notice(room, lambda t: t == f"peer_revoked: {world.name} is revoked; nothing was sent")
    dev_user = world.device.client.user_id
    await world.wait(lambda: dev_user not in world.shell.client.nio_client.rooms[room].users, what="kick")


async def test_hub_directory_stale_and_revoked(make_world: MakeWorld) -> None:
    hub = StandInHub("hub-" + secrets.token_hex(8))
    world = await make_world(hub=hub, stale_after_s=3600.0)
    room, approvals, name = world.device_room, world.approvals_room, world.name
    # the agent's status event is what /devices shows
    await world.device.client.send_custom(room, STATUS_EVENT, {"device_id": name, "state": "ok",
                                                               "ts": int(time.time() * 1000), "detail": ""})
    await world.wait(lambda: world.shell.statuses.get(name), what="the status event")
    assert world.shell.devices_listing()[0]["agent_state"] == "ok"

    # never a handshake, then one two days old: one stale alert each time it goes stale, one when back
    await world.notice(approvals, lambda t: t == f"alert: {name} has never completed a WireGuard handshake")
    hub.peers[name]["latest_handshake"] = time.time()
    await world.notice(approvals, lambda t: t.startswith(f"{name} is back"))
    hub.peers[name]["latest_handshake"] = time.time() - 2 * 86400
    stale = f"alert: {name} is stale: last handshake 2 days ago"
    await world.notice(approvals, lambda t: t.startswith(stale))
    await world.say("!status")
    await world.notice(room, lambda t: t.startswith(f"{name}: last handshake") and "agent ok" in t)

    # revoked at the hub (its API, by anyone): the bot answers peer_revoked within the 5 s the spec allows
    hub.peers[name]["status"] = "revoked"
    t0 = time.monotonic()
    while True:
        await world.say("!exec ls /tmp")
        try:
            await world.notice(room, lambda t: t.startswith("peer_revoked:"), timeout=1.0)
            break
        except AssertionError:
            assert time.monotonic() - t0 < 5.0, "still not revoked after 5 s"
    assert time.monotonic() - t0 < 5.0

    # the adapter maps the hub's errors to FnError codes
    assert isinstance(world.shell.hub, HubApi)
    with pytest.raises(FnError) as err:
        await world.shell.hub.revoke("no-such-device")
    assert err.value.code == "peer_unknown"


async def test_built_from_settings(synapse: SynapseServer, state_dir: Path) -> None:
    """The entry point's assembly: Matrix settings + bot.toml + key store -> a running bot
    that creates #operator-approvals and serves the control API with the hub's token."""
    op_user, _ = synapse.new_user("operator")
    bot_user = synapse.configure_state(state_dir, operators=[op_user])
    manifests = state_dir / "manifests"
    manifests.mkdir()
    conf = state_dir / "agents_and_robots" / "bot.toml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'manifests_dir = "{manifests}"\ncontrol_port = 0\npoll_s = 0.5\n')
    open_keystore().put("wg_hub/api_token", secrets.token_bytes(32))
    shell = bot_config.build(bot_config.load())
    try:
        await shell.start()
        assert shell.client.user_id == bot_user and shell.approvals_room
        alias = f"#operator-approvals:{synapse.server_name}"
        assert await shell.client.resolve(alias) == shell.approvals_room
        token = bot_config.api_token(open_keystore(), "wg_hub/api_token")
        host, port = shell.control_bound[0]
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"http://{host}:{port}/healthz")).json() == {"state": "ok"}
            r = await http.get(f"http://{host}:{port}/devices", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.json() == []
    finally:
        await shell.stop()


async def test_commands_to_one_device_leave_in_the_order_sent(make_world: MakeWorld) -> None:
    # Envelopes are signed and sent off the sync loop; for one device they still go out in order.
    world = await make_world()
    sent = [await world.say(f"!exec ls {path}") for path in ("/tmp/a", "/tmp/b", "/tmp/c", "/tmp/d")]
    envelopes = await world.wait(
        lambda: len(got := [e for e in world.envelopes if e.content.get("reply_to") in sent]) == 4 and got,
        what="four envelopes",
    )
    assert [e.content["reply_to"] for e in envelopes] == sent


async def test_a_result_carried_by_a_notice_counts_only_from_the_device(make_world: MakeWorld) -> None:
    """A current agent's answer carries its result (bus.RESULT_KEY of the m.notice): the bot
    reads it as it reads a separate result event, and only from the device's own user."""
    world = await make_world()
    room, approvals = world.device_room, world.approvals_room
    cmd = await world.say("!exec ls /tmp")
    env = await world.envelope_for(cmd)
    rid = env.content["envelope"]["request_id"]
    await world.row(rid, "ok")

    def answer(tag: str) -> dict[str, Any]:
        result = ResultEvent(rid, world.device.manifest.device_id, "rejected_nonce", output=tag).to_content()
        return {"msgtype": "m.notice", "body": f"replay [{rid}]", RESULT_KEY: result}

    forged, real = f"forged-{secrets.token_hex(3)}", f"device-{secrets.token_hex(3)}"
    await world.operator.send_custom(room, "m.room.message", answer(forged))  # not the device's user
    await world.device.client.send_custom(room, "m.room.message", answer(real))
    alert = f"refused request {rid} as a replay (rejected_nonce): {real}"
    await world.notice(approvals, lambda t: alert in t)
    # the bot handles a room's events in order: the forged one came first and left no alert
    assert not [e for e in world.messages.get(approvals, []) if forged in (e.body or "")]
