"""A re-issued manifest reaches a running agent (real Synapse): it says so in its room and its
audit chain, runs the new capability, and refuses the old manifest when a hub serves it again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from meshagents.trust import manifest as trust_manifest
from tests.testbed.agent_world import MakeWorld
from tests.testbed.synapse import free_port

pytestmark = pytest.mark.integration


@contextmanager
def hub_standin(port: int, served: dict[str, Any]) -> Iterator[None]:
    """The hub's endpoints the agent uses: /healthz, GET /api/manifest/{id}, POST /api/audit/{id}."""

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
            if self.path.startswith("/api/manifest/"):
                self._answer(200, {"manifest": served["manifest"], "serial": served["manifest"]["serial"]})
            else:
                self._answer(200, {"ok": True})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._answer(200, {"head_seq": body["checkpoint"]["seq"]})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


async def test_reissued_manifest_is_taken_announced_and_the_old_one_refused(
    make_world: MakeWorld, tmp_path: Path
) -> None:
    world = await make_world()
    port = free_port()
    served: dict[str, Any] = {}
    with hub_standin(port, served):
        agent, rig = await world.add_agent(
            tmp_path / "a", hub_url=f"http://127.0.0.1:{port}", manifest_poll_s=0.3,
            capabilities=[{"name": "system.info"}],
        )  # fmt: skip
        first = json.loads(rig.manifest_path.read_text())
        served["manifest"] = first
        room = world.rooms[rig.device_id]
        echo = {"name": "shell.exec.echo", "executables": ["/bin/echo", "/usr/bin/echo"], "timeout_s": 10}
        second = trust_manifest.sign(
            {
                **first,
                "serial": 2,
                "capabilities": [*first["capabilities"], echo],
                "approvers": [*first["approvers"], "@second:localhost"],
            },
            rig.operator,
        ).model_dump(mode="json")
        served["manifest"] = second
        notice = await world.notices[room].wait(lambda e: "manifest updated" in (e.body or ""), 30)
        assert "serial 1 → 2" in (notice.body or "") and "added: shell.exec.echo" in (notice.body or "")
        assert json.loads(rig.manifest_path.read_text())["serial"] == 2
        assert "@second:localhost" in agent.client.config.operators  # approvers follow the manifest

        content = rig.content("shell.exec.echo", {"argv": ["echo", "granted by serial 2"]})
        await world.send(rig, content)
        res, _ = await world.result(rig, content["envelope"]["request_id"])
        assert res.content["status"] == "ok"

        served["manifest"] = first  # a hub serving the old manifest again (validly signed)
        refused = await world.notices[room].wait(lambda e: "manifest refused" in (e.body or ""), 30)
        assert "manifest_serial_rollback" in (refused.body or "")
        assert agent.pipeline.manifest().serial == 2
        statuses = [e.status for e in agent.pipeline.audit.entries()]
        assert statuses.count("manifest_updated") == 1 and statuses.count("manifest_refused") == 1
        assert agent.pipeline.audit.verify().ok
