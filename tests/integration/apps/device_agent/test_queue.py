"""The agent's bounded queue on a real Synapse: with one request running and the queue
full, the next envelope is answered at once with ``queue_full`` and nothing runs; once
the queue drains, requests are accepted again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed.agent_world import MakeWorld

pytestmark = pytest.mark.integration


async def test_queue_full_is_refused_clearly(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a", max_queue=1, max_concurrent=1)
    go, marker = rig.writable / "go", rig.writable / "second-ran"
    # blocks until the test says go: no timing in the test
    wait = rig.content("shell.exec.sh", {"argv": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"]})
    await world.send(rig, wait)
    second = rig.content("shell.exec.sh", {"argv": ["sh", "-c", f"touch {marker}"]})
    await world.send(rig, second)
    res, notice = await world.result(rig, second["envelope"]["request_id"])
    assert res.content["status"] == "error", res.content
    assert "queue_full" in (notice.body or "") and "nothing was run" in (notice.body or "")
    assert not marker.exists()
    go.touch()
    first, _ = await world.result(rig, wait["envelope"]["request_id"])
    assert first.content["status"] == "ok", first.content
    # the refused envelope never spent its nonce: the same one runs now that there is room
    await world.send(rig, second)
    res, _ = await world.result(rig, second["envelope"]["request_id"])
    assert res.content["status"] == "ok", res.content
    assert marker.exists()
    assert agent.pipeline.audit.verify().ok
