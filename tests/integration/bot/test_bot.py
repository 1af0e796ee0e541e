"""The bot on a real Synapse: refusals, dispatch, approvals, expiry, the control API,
replays and revocation (see conftest.py for the world)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apps.agents_and_robots.core import DASHBOARD
from meshagents.bus import APPROVAL_REQUEST_KEY, ENVELOPE_EVENT
from tests.integration.bot.conftest import MakeWorld

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
    env_event = await world.wait(lambda: [e for e in world.envelopes if e.content.get("reply_to") == cmd],
                                 what="the envelope")
    rid = env_event[0].content["envelope"]["request_id"]
    row = await world.row(rid, "ok")
    assert row.capability == "shell.exec.ls" and row.device == world.name
    assert world.device.results[-1]["status"] == "ok"

    # a stranger in the device room: refused, alerted, nothing sent
    before = len(world.envelopes)
    await world.say("!exec ls /tmp", who=world.stranger)
    await world.notice(room, lambda t: t.startswith("refused:") and world.stranger.user_id in t)
    await world.notice(approvals, lambda t: t.startswith("alert: refused a command") and world.stranger.user_id in t)
    assert len(world.envelopes) == before

    # the directory's revoked mark (what the hub reports) answers peer_revoked within the poll interval
    (world.manifests / f"{world.name}.revoked").write_text("revoked\n")
    await asyncio.sleep(world.shell.cfg.poll_s * 2 + 0.2)
    await world.say("!exec ls /tmp")
    await world.notice(room, lambda t: t == f"peer_revoked: {world.name} is revoked; nothing was sent")
    assert world.latest_row().status == "peer_revoked"
