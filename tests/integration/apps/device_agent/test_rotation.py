"""Operator-key rotation on a real agent over Matrix (docs/protocol.md §8): the rotation
statement and the re-signed manifest arrive as an ``org.meshagents.rotation`` event in
the device room; the agent then runs envelopes under the new key's manifest and
refuses a manifest signed by the retired key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from meshagents.bus import ROTATION_EVENT
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.rotation import make_statement
from tests.testbed.agent_world import MakeWorld

pytestmark = pytest.mark.integration


async def test_agent_follows_rotation(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a")
    room = world.rooms[rig.device_id]
    ls = {"argv": ["ls", str(rig.files)]}
    new = SigningKey.generate()
    body = json.loads(rig.manifest_path.read_text())

    # a statement that does not start at the trusted key installs nothing
    by_new = trust_manifest.sign({**body, "serial": 2}, new).model_dump(mode="json")
    unchained = make_statement(new, SigningKey.generate()).model_dump(mode="json")
    bad = {"statement": unchained, "manifest": by_new}
    await world.bot.send_custom(room, ROTATION_EVENT, bad)
    refused = await world.notices[room].wait(lambda e: (e.body or "").startswith("rotation refused:"))
    assert "rotation_unchained" in (refused.body or "")

    # the operator rotates; the statement and the re-signed manifest are shipped to the room
    statement = make_statement(rig.operator, new, reason="yearly").model_dump(mode="json")
    await world.bot.send_custom(room, ROTATION_EVENT, {"statement": statement, "manifest": by_new})
    accepted = await world.notices[room].wait(lambda e: (e.body or "").startswith("rotation accepted:"))
    assert "serial 2" in (accepted.body or "")
    content = rig.content("shell.exec.ls", ls)
    await world.send(rig, content)
    res, _ = await world.result(rig, content["envelope"]["request_id"])
    assert res.content["status"] == "ok", res.content
    assert agent.pipeline.manifest().serial == 2

    # a manifest signed by the retired key (even with a higher serial) is refused
    retired = trust_manifest.sign({**body, "serial": 7}, rig.operator).model_dump(mode="json")
    await asyncio.to_thread(rig.manifest_path.write_text, json.dumps(retired))
    content = rig.content("shell.exec.ls", ls)
    await world.send(rig, content)
    res, notice = await world.result(rig, content["envelope"]["request_id"])
    assert res.content["status"] == "rejected_capability", res.content
    assert "manifest_invalid_signature" in (notice.body or ""), notice.body
    assert agent.pipeline.audit.verify().ok
