"""Degraded mode: with the hub unreachable over the mesh, or the homeserver down, the
agent reports `degraded`, retries with backoff and reports `ok` on return; audit
entries written meanwhile reach the hub once it answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.agent_world import MakeWorld
from tests.testbed.synapse import SynapseServer, free_port

pytestmark = pytest.mark.integration


@contextmanager
def hub_standin(port: int) -> Iterator[list[dict[str, Any]]]:
    """A loopback stand-in for the hub's two endpoints the agent uses."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(200, {"ok": True})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.extend(body["entries"])
            self._answer(200, {"head_seq": body["checkpoint"]["seq"]})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


async def test_mesh_and_homeserver_outages(
    make_world: MakeWorld, synapse: SynapseServer, tmp_path: Path
) -> None:
    world = await make_world()
    port = free_port()
    agent, rig = await world.add_agent(tmp_path / "a", hub_url=f"http://127.0.0.1:{port}")
    room = world.rooms[rig.device_id]
    first = await world.statuses[room].wait(lambda e: True, 30)
    assert first.content["state"] == "degraded" and "hub" in first.content["detail"]
    assert agent.state == "degraded"

    content = rig.content("shell.exec.echo", {"argv": ["echo", "while the mesh is down"]})
    await world.send(rig, content)
    res, _ = await world.result(rig, content["envelope"]["request_id"])
    assert res.content["status"] == "ok"  # commands still run; only shipping waits

    with hub_standin(port) as received:
        back = await world.statuses[room].wait(lambda e: e.content["state"] == "ok", 30)
        assert back.content["device_id"] == rig.device_id
        agent.shipper.nudge.set()
        for _ in range(100):
            if len(received) >= 2:
                break
            await _sleep(0.1)
        assert [e["seq"] for e in received] == [1, 2]
        assert received[-1]["hash"] == agent.pipeline.audit.head()[1]

        synapse.stop()
        try:
            for _ in range(200):
                if agent.state == "degraded":
                    break
                await _sleep(0.1)
            assert agent.state == "degraded"
        finally:
            synapse.start()
        await world.statuses[room].wait(lambda e: e.content["state"] == "ok", 60)
        assert agent.state == "ok"


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_envelopes_waiting_while_the_agent_is_down(make_world: MakeWorld, tmp_path: Path) -> None:
    """Envelopes sent while the agent is away arrive when it is back: a still-valid one
    runs, one past its expiry is refused as rejected_expired with a reply, never run."""
    world = await make_world()
    agent, rig = await world.add_agent(tmp_path / "a", skew_s=0)
    await agent.stop()
    world.agents.remove(agent)
    late_marker = rig.writable / "late"
    late = rig.content("shell.exec.sh", {"argv": ["sh", "-c", f"touch {late_marker}"]}, ttl_s=1)
    valid = rig.content("shell.exec.echo", {"argv": ["echo", "waited"]}, ttl_s=300)
    await world.send(rig, late)
    await world.send(rig, valid)
    await _sleep(2.5)
    await world.start_agent(rig)
    res, note = await world.result(rig, late["envelope"]["request_id"])
    assert res.content["status"] == "rejected_expired" and "rejected_expired" in (note.body or "")
    res, _ = await world.result(rig, valid["envelope"]["request_id"])
    assert res.content["status"] == "ok" and res.content["output"] == "waited\n"
    assert not late_marker.exists()
