"""The bot with the real device agent (meshagents/apps/device_agent) instead of the test device:
the two sides of meshagents.bus agree (envelope event, approval request, result)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshagents.apps.agents_and_robots.directory import FileDirectory, LocalHub
from meshagents.apps.agents_and_robots.shell import BotShell, ShellConfig
from meshagents.apps.device_agent.agent import DeviceAgent
from meshagents.bus import APPROVAL_REQUEST_KEY
from meshagents.matrix.client import Incoming, MatrixClient
from meshagents.matrix.rooms import power_levels
from meshagents.trust.keystore import CONTROLLER_KEY, open_keystore
from meshagents.trust.signing import public_b64
from tests.testbed.agent_rig import make_rig
from tests.testbed.bot_world import FAST
from tests.testbed.results import on_results
from tests.testbed.synapse import SynapseServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def wait(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return got


async def test_bot_with_the_real_device_agent(synapse: SynapseServer, tmp_path: Path,
                                              state_dir: Path) -> None:
    op_user, op_pw = synapse.new_user("operator")
    bot_user, bot_pw = synapse.new_user("bot")
    dev_user, dev_pw = synapse.new_user("device")
    name = synapse.unique("dev")
    approvals_alias = synapse.unique("operator-approvals")
    files = tmp_path / "agent" / "files"
    caps: list[dict[str, Any]] = [
        {"name": "shell.exec.ls", "executables": ["/usr/bin/ls"], "path_prefixes": [str(files)]},
        {"name": "shell.exec.echo", "executables": ["/usr/bin/echo"], "requires_approval": True},
    ]
    operator = MatrixClient(synapse.client_config(op_user, op_pw, tmp_path / "operator",
                                                  accept_invites_from=(bot_user,), **FAST))
    results: list[Incoming] = []
    seen: list[Incoming] = []

    async def on_result(ev: Incoming) -> None:
        results.append(ev)

    async def on_message(ev: Incoming) -> None:
        seen.append(ev)

    on_results(operator, on_result)
    operator.on_message(on_message)
    shell: BotShell | None = None
    agent: DeviceAgent | None = None
    try:
        await operator.start()
        room = await operator.create_room(alias=f"dev-{name}", invite=[bot_user, dev_user],
                                          power_levels=power_levels([op_user], bot_user, dev_user))
        rig = make_rig(tmp_path / "agent", capabilities=caps, approvers=[op_user], device_id=name,
                       homeserver=synapse.url, matrix_user=dev_user, matrix_password=dev_pw, device_room=room,
                       approvals_room=f"#{approvals_alias}:{synapse.server_name}", bot_users=[bot_user])
        open_keystore().put(CONTROLLER_KEY, bytes(rig.controller))  # the bot signs with the rig's controller
        manifests = tmp_path / "manifests"
        manifests.mkdir()
        (manifests / f"{name}.json").write_text(rig.manifest_path.read_text())
        shell = BotShell(
            ShellConfig(client=synapse.client_config(bot_user, bot_pw, tmp_path / "bot", **FAST),
                        server_name=synapse.server_name, operators=(op_user,),
                        approvals_alias=approvals_alias, control_port=0, poll_s=0.5, tick_s=0.5,
                        store_path=tmp_path / "operations.db"),
            directory=FileDirectory(manifests, operator_key=public_b64(rig.operator)),
            hub=LocalHub(manifests))
        await shell.start()
        assert shell.approvals_room is not None
        await shell.client.wait_for_member(shell.approvals_room, op_user, timeout=30)
        agent = DeviceAgent(rig.config, **FAST)
        await agent.start(start_timeout=30)
        for r in (room, shell.approvals_room):
            await shell.client.wait_for_member(r, dev_user, timeout=30)
            await operator.wait_for_member(r, dev_user, timeout=30)

        cmd = await operator.send_text(room, f"!exec ls {files}")
        row = await wait(lambda: [r for r in shell.store.recent(5) if r.command_event_id == cmd
                                    and r.status not in ("received", "sent")], 30, "the agent's answer")
        assert row[0].status == "ok", row[0]
        await wait(lambda: [e for e in seen if e.sender == dev_user and "hello.txt" in (e.body or "")], 30,
                     "the agent's notice")

        cmd = await operator.send_text(room, "!exec echo approved")
        req = await wait(lambda: [e for e in seen if APPROVAL_REQUEST_KEY in e.content], 30, "the request")
        await operator.send_reaction(shell.approvals_room, req[-1].event_id, "👍")
        row = await wait(lambda: [r for r in shell.store.recent(5) if r.command_event_id == cmd
                                    and r.status not in ("received", "pending_approval", "approved", "sent")],
                           30, "the approved command's answer")
        assert row[0].status == "ok", row[0]
        assert [json.dumps(e.content) for e in results if e.content.get("status") == "ok"]
    finally:
        if agent is not None:
            await agent.stop()
        if shell is not None:
            await shell.stop()
        await operator.stop()
