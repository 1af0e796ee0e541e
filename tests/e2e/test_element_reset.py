"""Element as it is (issue 17): an identity reset in Element, refused until the operator key
confirms it — on a rig of its own (this test changes the operator's identity for good, and
the tests in test_element.py run in any order).

The fixtures (``erig``: one device, no Docker, per module; ``element``: a brand-new
matrix-js-sdk session) are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest

from meshagents.matrix import crosssign
from meshagents.testbed.rig import Rig
from tests.e2e.conftest import ELEMENT_HOME as HOME
from tests.e2e.conftest import element_device_user as device_user
from tests.element.driver import ElementClient

pytestmark = [pytest.mark.e2e, pytest.mark.root]


async def test_identity_reset_is_refused_until_the_operator_key_confirms_it(
    erig: Rig, element: ElementClient, tmp_path: Path
) -> None:
    """It changes the operator's identity for good: hence a rig of its own."""
    await element.verify(erig.recovery_key)
    room = await element.join(erig.rooms[HOME])
    old = (await element.status())["master_key"]
    sent = await element.send(room, "!exec ls /tmp")  # the operator at work before the reset
    await element.wait_event(
        {"room_id": room, "in_reply_to": sent["event_id"], "sender": device_user(erig)}, timeout=60
    )
    reset = await element.reset_identity()
    new = reset["master_key"]
    assert new and new != old and reset["device_verified"], reset
    sent = await element.send(room, "!exec ls /tmp")
    refusal = await element.wait_event(
        {"room_id": room, "sender": erig.bot_user, "in_reply_to": sent["event_id"]}, timeout=60
    )
    assert not refusal["encrypted"] and "trust-matrix-identity" in (refusal["body"] or ""), refusal
    async with httpx.AsyncClient() as http:
        health = (await http.get(erig.bot_api_url + "/healthz")).json()
    assert health.get("pending_identities") == {erig.operator_user: new}, health

    conn = tmp_path / "connection.json"
    conn.write_text(json.dumps(erig.connection()))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meshagents.runtime.cli", "operator", "trust-matrix-identity",
        "--connection", str(conn), "--master-key", new, "--yes",
        cwd=erig.root, env=erig.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["master_key"] == new

    sent = await element.send(room, "!exec ls /tmp")
    reply = await element.wait_event(
        {"room_id": room, "in_reply_to": sent["event_id"], "sender": device_user(erig)}, timeout=60
    )
    assert reply["encrypted"] and "]: ok" in reply["body"].split("\n", 1)[0], reply
    async with httpx.AsyncClient() as http:
        health = (await http.get(erig.bot_api_url + "/healthz")).json()
    assert "pending_identities" not in health, health

    # The project's own operator client takes the new identity from secret storage with the
    # recovery key (and does not reset the identity back to its old seeds).
    op = erig.operator_client("after-reset")
    await op.start()
    try:
        seeds = crosssign.CrossSigningSeeds.from_json(json.loads(erig.cross_signing_path.read_text()))
        assert seeds.master_public == new
        answer = await op.command(HOME, "!exec ls /tmp", timeout=60)
        assert "]: ok" in answer.body.split("\n", 1)[0], answer.body
    finally:
        await op.stop()
