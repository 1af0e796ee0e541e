"""Approvals checked by the agent itself in #operator-approvals: an operator's 👍 from a
verified device lets an fs.write run; a 👍 on ANOTHER request, a 👍 from someone who
is not an operator, and an approval named by an envelope but never sent are refused
with nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.agent.conftest import MakeWorld

pytestmark = pytest.mark.integration


async def test_approvals(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a")
    mallory = await world.client("mallory")
    await world.operator.nio_client.room_invite(world.approvals_room, mallory.user_id)
    await mallory.join(world.approvals_room)
    await world.operator.wait_for_member(world.approvals_room, mallory.user_id)
    target = rig.writable / "note.txt"
    args = {"path": str(target), "content": "approved text\n"}

    # 1. a good approval: the bot posts R, the operator reacts 👍 (A), the envelope names A
    draft = rig.envelope("fs.write", args)
    request_event = await world.request_approval(rig, draft)
    approval = await world.react(world.operator, request_event)
    content = rig.content(
        "fs.write", args, approval=approval, request_id=draft["request_id"], request_event=request_event
    )
    await world.send(rig, content)
    res, _ = await world.result(rig, draft["request_id"])
    assert res.content["status"] == "ok", res.content
    assert target.read_text() == "approved text\n"
    intent = [e for e in agent.pipeline.audit.entries() if e.kind == "intent"][-1]
    assert intent.approval == approval
    target.unlink()

    # 2. an approval of ANOTHER request (other arguments) named by this envelope
    other = rig.envelope("fs.write", {"path": str(target), "content": "harmless\n"})
    other_request = await world.request_approval(rig, other, approval_id="apr002")
    other_approval = await world.react(world.operator, other_request)
    evil_args = {"path": str(target), "content": "evil\n"}
    evil = rig.content("fs.write", evil_args, approval=other_approval, request_event=other_request)
    await world.send(rig, evil)
    res, _ = await world.result(rig, evil["envelope"]["request_id"])
    assert res.content["status"] == "rejected_approval"
    assert "another request" in res.content["reason"], res.content

    # 3. a 👍 from a user who is not an operator in the manifest (verified device or not)
    draft3 = rig.envelope("fs.write", args)
    request3 = await world.request_approval(rig, draft3, approval_id="apr003")
    fake = await world.react(mallory, request3)
    content3 = rig.content(
        "fs.write", args, approval=fake, request_id=draft3["request_id"], request_event=request3
    )
    await world.send(rig, content3)
    res, _ = await world.result(rig, draft3["request_id"])
    assert res.content["status"] == "rejected_approval"
    assert "not an approver" in res.content["reason"]

    # 4. "!approve <id>" typed by the operator works like a 👍 (R from the event's hint)
    draft4 = rig.envelope("fs.write", args)
    request4 = await world.request_approval(rig, draft4, approval_id="apr004")
    typed = await world.operator.send_text(world.approvals_room, "!approve apr004")
    content4 = rig.content(
        "fs.write", args, approval=typed, request_id=draft4["request_id"], request_event=request4
    )
    await world.send(rig, content4)
    res, _ = await world.result(rig, draft4["request_id"])
    assert res.content["status"] == "ok", res.content
    assert target.read_text() == "approved text\n"
    target.unlink()

    # 5. the operator's 👍 sent unencrypted: nothing ties it to a verified device
    draft5 = rig.envelope("fs.write", args)
    request5 = await world.request_approval(rig, draft5, approval_id="apr005")
    plain = await world.operator.send_reaction(world.approvals_room, request5, "👍", encrypted=False)
    content5 = rig.content(
        "fs.write", args, approval=plain, request_id=draft5["request_id"], request_event=request5
    )
    await world.send(rig, content5)
    res, _ = await world.result(rig, draft5["request_id"])
    assert res.content["status"] == "rejected_approval"
    assert "not verified" in res.content["reason"], res.content

    # 6. an approval id that names no event at all (a stolen controller key inventing one)
    invented = rig.content("fs.write", args, approval="$invented:localhost")
    await world.send(rig, invented)
    res, _ = await world.result(rig, invented["envelope"]["request_id"])
    assert res.content["status"] == "rejected_approval"

    assert not target.exists()
    assert agent.pipeline.audit.verify().ok
