"""Approvals checked by the agent itself in #operator-approvals, on a real Synapse with
cross-signed clients: an operator's 👍 from a verified device lets an fs.write run once;
everything a stolen hub (controller key and bot account) or a device user could try
is refused with a stable ``rejected_approval: <code>`` in the room and in the audit
chain, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nio
import pytest

from meshagents.apps.device_agent.agent import DeviceAgent
from meshagents.errors import FnError
from tests.testbed.agent_rig import Rig, default_capabilities
from tests.testbed.agent_world import MakeWorld, World

pytestmark = pytest.mark.integration


async def _levels(world: World, user: str, level: int) -> None:
    """Give ``user`` a power level in the approvals room (an older, permissive room)."""
    nio_client = world.operator.nio_client
    resp = await nio_client.room_get_state_event(world.approvals_room, "m.room.power_levels")
    content = dict(resp.content)
    content["users"] = {**content["users"], user: level}
    put = await nio_client.room_put_state(world.approvals_room, "m.room.power_levels", content)
    assert isinstance(put, nio.RoomPutStateResponse), put


async def _refused(world: World, agent: DeviceAgent, rig: Rig, content: dict[str, Any], code: str) -> None:
    rid = content["envelope"]["request_id"]
    await world.send(rig, content)
    res, notice = await world.result(rig, rid)
    assert res.content["status"] == "rejected_approval", res.content
    reason = str(res.content.get("reason") or res.content.get("output") or "")
    assert code in reason or code in (notice.body or ""), (code, res.content, notice.body)
    entry = agent.pipeline.audit.entries()[-1]
    assert (entry.kind, entry.status, entry.request_id) == ("event", "rejected_approval", rid)
    assert entry.detail.startswith(code + ":"), entry.detail


def _caps(rig_root: Path) -> list[dict[str, Any]]:
    """The rig's capabilities with fs.list and fs.read behind an approval (for the swap row)."""
    files, writable = rig_root / "files", rig_root / "writable"
    caps = default_capabilities(files, writable)
    for cap in caps:
        if cap["name"] in ("fs.list", "fs.read"):
            cap["requires_approval"] = True
    return caps


async def test_approvals(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a", capabilities=_caps(tmp_path / "a"))
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

    # 2. replay: the same approval under a fresh nonce (a stolen controller key signs it again)
    replay = rig.content(
        "fs.write", args, approval=approval, request_id=draft["request_id"], request_event=request_event
    )
    assert replay["envelope"]["nonce"] != content["envelope"]["nonce"]
    await _refused(world, agent, rig, replay, "approval_reused")

    # 3. an approval of ANOTHER request (other arguments) named by this envelope
    other = rig.envelope("fs.write", {"path": str(target), "content": "harmless\n"})
    other_request = await world.request_approval(rig, other, approval_id="apr002")
    other_approval = await world.react(world.operator, other_request)
    evil = rig.content(
        "fs.write", {"path": str(target), "content": "evil\n"}, approval=other_approval,
        request_id=other["request_id"], request_event=other_request,
    )  # fmt: skip
    await _refused(world, agent, rig, evil, "binding_args")

    # 4. a look-alike R posted by a device user: the homeserver refuses it (devices read,
    #    never post) ...
    draft4 = rig.envelope("fs.write", args)
    with pytest.raises(FnError):
        await world.request_approval(rig, draft4, approval_id="apr004", sender=agent.client)
    #    ... and where the room lets a member post (an old room, a member with power), the
    #    device refuses an R that a bot of its manifest did not send
    await _levels(world, mallory.user_id, 50)
    fake_r = await world.request_approval(rig, draft4, approval_id="apr004", sender=mallory)
    fake_a = await world.react(world.operator, fake_r)
    c4 = rig.content("fs.write", args, approval=fake_a, request_id=draft4["request_id"], request_event=fake_r)
    await _refused(world, agent, rig, c4, "request_not_from_bot")

    # 5. capability swap: an approval for fs.list P used for fs.read P
    listing = rig.envelope("fs.list", {"path": str(rig.files)})
    r5 = await world.request_approval(rig, listing, approval_id="apr005")
    a5 = await world.react(world.operator, r5)
    swap = rig.content(
        "fs.read", {"path": str(rig.files)}, approval=a5, request_id=listing["request_id"], request_event=r5
    )
    await _refused(world, agent, rig, swap, "binding_capability")

    # 6. 👎 then 👍: the first decision stands, whatever the hub does afterwards
    draft6 = rig.envelope("fs.write", args)
    r6 = await world.request_approval(rig, draft6, approval_id="apr006")
    await world.react(world.operator, r6, "👎")
    a6 = await world.react(world.operator, r6)
    c6 = rig.content("fs.write", args, approval=a6, request_id=draft6["request_id"], request_event=r6)
    await _refused(world, agent, rig, c6, "approval_denied")

    # 7. R's text shows another command than its binding asks for (what you see is what you approve)
    draft7 = rig.envelope("fs.write", args)
    r7 = await world.request_approval(
        rig, draft7, approval_id="apr007", body="approval needed: fs.list /tmp (harmless) — react 👍"
    )
    a7 = await world.react(world.operator, r7)
    c7 = rig.content("fs.write", args, approval=a7, request_id=draft7["request_id"], request_event=r7)
    await _refused(world, agent, rig, c7, "text_mismatch")

    # 8. a 👍 from a user who is not an operator in the manifest (may post, verified or not)
    draft8 = rig.envelope("fs.write", args)
    r8 = await world.request_approval(rig, draft8, approval_id="apr008")
    fake = await world.react(mallory, r8)
    c8 = rig.content("fs.write", args, approval=fake, request_id=draft8["request_id"], request_event=r8)
    await _refused(world, agent, rig, c8, "approval_not_approver")

    # 9. "!approve <id>" typed by the operator works like a 👍 (R from the event's hint)
    draft9 = rig.envelope("fs.write", args)
    r9 = await world.request_approval(rig, draft9, approval_id="apr009")
    typed = await world.operator.send_text(world.approvals_room, "!approve apr009")
    c9 = rig.content("fs.write", args, approval=typed, request_id=draft9["request_id"], request_event=r9)
    await world.send(rig, c9)
    res, _ = await world.result(rig, draft9["request_id"])
    assert res.content["status"] == "ok", res.content
    assert target.read_text() == "approved text\n"
    target.unlink()

    # 10. the operator's 👍 sent unencrypted: nothing ties it to a verified device
    draft10 = rig.envelope("fs.write", args)
    r10 = await world.request_approval(rig, draft10, approval_id="apr010")
    plain = await world.operator.send_reaction(world.approvals_room, r10, "👍", encrypted=False)
    c10 = rig.content("fs.write", args, approval=plain, request_id=draft10["request_id"], request_event=r10)
    await _refused(world, agent, rig, c10, "approval_unverified")

    # 11. an approval id that names no event at all (a stolen controller key inventing one)
    invented = rig.content("fs.write", args, approval="$invented:localhost")
    await _refused(world, agent, rig, invented, "approval_not_found")

    # 12. the envelope's R hint names another request (the agent reads R, the gap and A at once
    #     from the hint): the R that the 👍 itself names is the one checked, read again
    draft12 = rig.envelope("fs.write", args)
    r12 = await world.request_approval(rig, draft12, approval_id="apr012")
    a12 = await world.react(world.operator, r12)
    c12 = rig.content("fs.write", args, approval=a12, request_id=draft12["request_id"],
                      request_event=other_request)  # fmt: skip
    await world.send(rig, c12)
    res, _ = await world.result(rig, draft12["request_id"])
    assert res.content["status"] == "ok", res.content
    assert target.read_text() == "approved text\n"
    target.unlink()
    #     ... and a hint naming the right R does not make a 👍 on another request count
    draft13 = rig.envelope("fs.write", args)
    r13 = await world.request_approval(rig, draft13, approval_id="apr013")
    c13 = rig.content("fs.write", args, approval=other_approval, request_id=draft13["request_id"],
                      request_event=r13)  # fmt: skip
    await _refused(world, agent, rig, c13, "binding_request")

    assert not target.exists()
    assert agent.pipeline.audit.verify().ok
