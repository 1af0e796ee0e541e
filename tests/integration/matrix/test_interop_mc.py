"""Interoperability with a client nobody here wrote: matrix-commander (its own venv)
sends an encrypted message that our client decrypts, and reads our encrypted reply."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from meshagents.matrix.client import Incoming
from tests.testbed.matrix_clients import MakeClient
from tests.testbed.synapse import SynapseServer

pytestmark = pytest.mark.integration


async def test_matrix_commander_round_trip(
    synapse: SynapseServer, make_client: MakeClient, matrix_commander: Path, tmp_path: Path
) -> None:
    mc_user, mc_password = synapse.new_user("mc")
    # matrix-commander does not cross-sign its device, so this bot shares keys with
    # devices that are not cross-signed (the default would leave mc unable to read).
    bot = await make_client("bot", operators=(mc_user,), exclude_insecure_devices=False, start=False)
    got: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await got.put(ev)

    bot.on_message(put)
    await bot.start()
    room = await bot.create_room(invite=[mc_user])

    def mc(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(matrix_commander),
            "-c",
            str(tmp_path / "mc-creds.json"),
            "-s",
            str(tmp_path / "mc-store"),
            *args,
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        return r

    await asyncio.to_thread(
        mc,
        "--login",
        "password",
        "--homeserver",
        synapse.url,
        "--user-login",
        mc_user,
        "--password",
        mc_password,
        "--device",
        "mc-interop",
        "--room-default",
        room,
    )
    await asyncio.to_thread(mc, "--room-join", room)
    await bot.wait_for_member(room, mc_user)
    await asyncio.to_thread(mc, "-m", "hello from matrix-commander", "-r", room)

    ev = await asyncio.wait_for(got.get(), 20)
    assert ev.body == "hello from matrix-commander"
    assert ev.decrypted and ev.sender == mc_user
    assert not ev.verified  # mc's device is not cross-signed

    await bot.send_notice(
        room, "reply from our base", html="<b>reply</b> from our base", reply_to=ev.event_id
    )
    out = await asyncio.to_thread(mc, "--listen", "tail", "--tail", "5", "-o", "JSON", "-r", room)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip().startswith("{")]
    bodies = [
        e["source"].get("content", {}).get("body") for e in events if e["source"]["type"] == "m.room.message"
    ]
    # "m.room.message" here means matrix-commander decrypted it (on the wire it was m.room.encrypted).
    assert "reply from our base" in bodies, bodies
