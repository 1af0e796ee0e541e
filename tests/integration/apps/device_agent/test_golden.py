"""Against a real Synapse: the golden path (`!exec ls` output back in the room with its
audit entries) and every refusal status answered in the room with nothing run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from tests.testbed.agent_world import MakeWorld

pytestmark = pytest.mark.integration


async def test_golden_path_and_refusals(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a")

    cmd = await world.command(rig, f"!exec ls {rig.files}")
    content = rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}, reply_to=cmd)
    await world.send(rig, content)
    result, notice = await world.result(rig, content["envelope"]["request_id"])
    assert result.content["status"] == "ok", result.content
    assert "hello.txt" in result.content["output"] and result.content["exit_code"] == 0
    assert result.content["device_id"] == rig.device_id
    assert notice.content["m.relates_to"]["m.in_reply_to"]["event_id"] == cmd
    assert "hello.txt" in (notice.body or "") and "<pre><code>" in notice.content["formatted_body"]
    entries = agent.pipeline.audit.entries()
    assert [(e.kind, e.status, e.request_id) for e in entries] == [
        ("intent", "started", content["envelope"]["request_id"]),
        ("outcome", "ok", content["envelope"]["request_id"]),
    ]
    assert result.content["audit_seq"] == entries[-1].seq

    marker = rig.writable / "ran"
    touch = ["sh", "-c", f"touch {marker}"]
    bad_sig = rig.content("shell.exec.sh", {"argv": touch})
    bad_sig["envelope"]["args"]["argv"] = ["sh", "-c", f"touch {marker}; echo"]
    refusals = {
        "rejected_signature": bad_sig,
        "rejected_device": rig.content("shell.exec.sh", {"argv": touch}, device_id="dev-elsewhere"),
        "rejected_expired": rig.content(
            "shell.exec.sh", {"argv": touch}, ttl_s=30, now=int(time.time()) - 900
        ),
        "rejected_capability": rig.content("shell.exec.rm", {"argv": ["rm", "-rf", str(rig.files)]}),
        "rejected_args": rig.content("shell.exec.ls", {"argv": ["ls", "/etc"]}),
        "rejected_approval": rig.content("system.reboot", {"argv": ["true"]}),
    }
    stranger = rig.content("shell.exec.sh", {"argv": touch}, key=SigningKey.generate())
    for status, refused in [*refusals.items(), ("rejected_signature", stranger)]:
        cmd = await world.command(rig, f"!{status}")
        refused["reply_to"] = cmd
        await world.send(rig, refused)
        res, note = await world.result(rig, refused["envelope"]["request_id"])
        assert res.content["status"] == status, (status, res.content)
        assert status in (note.body or "")
        assert note.content["m.relates_to"]["m.in_reply_to"]["event_id"] == cmd
    # replay of the golden envelope
    await world.send(rig, content)
    res, _ = await world.result(rig, content["envelope"]["request_id"])
    assert res.content["status"] == "rejected_nonce"

    assert not marker.exists()
    tail = agent.pipeline.audit.entries()[2:]
    assert all(e.kind == "event" for e in tail)  # refusals: events, never an intent
    assert sorted({e.status for e in tail}) == sorted({*refusals, "rejected_nonce"})
    assert agent.pipeline.audit.verify().ok
