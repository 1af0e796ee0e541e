"""kill -9 of the agent process during a running command, then a restart: the chain
verifies, the interrupted request is visible (intent, no outcome) and announced in
the room, nothing is run again, and a replay of the old envelope is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshagents.trust.audit import AuditLog
from tests.testbed.agent_world import MakeWorld
from tests.testbed.host import ROOT, require_binary, require_root

pytestmark = pytest.mark.integration


async def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        await asyncio.sleep(0.05)


async def test_kill9_during_command_then_restart(make_world: MakeWorld, tmp_path: Path) -> None:
    require_root()
    require_binary("bwrap")
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a")
    await agent.stop()  # the in-process agent made the rooms and joined them; a process takes over
    world.agents.remove(agent)

    env = {**os.environ, "FN_STATE_DIR": str(tmp_path / "fn-state"), "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshagents.apps.device_agent", "--config", str(rig.config_path)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started, finished = rig.writable / "started", rig.writable / "finished"
        script = f"echo run >> {started}; sleep 30; touch {finished}"
        content = rig.content("shell.exec.sh", {"argv": ["sh", "-c", script]})
        await asyncio.sleep(1.0)  # let the process finish its first sync
        await world.send(rig, content)
        await _wait_for(started, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    rid = content["envelope"]["request_id"]
    with AuditLog(rig.config.audit_path) as audit:
        assert audit.verify().ok
        assert [e.request_id for e in audit.pending()] == [rid]

    restarted = await world.start_agent(rig)
    room = world.rooms[rig.device_id]
    notice = await world.notices[room].wait(lambda e: "interrupted" in (e.body or ""), 30)
    assert rid in (notice.body or "")
    await asyncio.sleep(3)  # time for anything that would wrongly re-run
    assert started.read_text() == "run\n"  # ran once, never again
    assert not finished.exists()  # the sandboxed child died with the agent

    await world.send(rig, content)  # the same envelope again, after the restart
    res, _ = await world.result(rig, rid)
    assert res.content["status"] == "rejected_nonce"
    audit = restarted.pipeline.audit
    report = audit.verify()
    assert report.ok, report
    assert [e.request_id for e in audit.pending()] == [rid]  # still visible as interrupted
    assert [e.status for e in audit.entries() if e.kind == "event"] == ["interrupted", "rejected_nonce"]
