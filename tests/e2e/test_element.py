"""Element as it is (issue 17): the operator on Element's own crypto stack, on a rig of its own.

The client is matrix-js-sdk 36.2.0 with its Rust crypto (matrix-sdk-crypto-wasm), the
stack Element Web runs, with device isolation "exclude insecure devices"
(``OnlySignedDevicesIsolationMode``), driven over JSON lines (tests/element/). Every
session below is brand new and learns nothing from the rig's files but the login and
the recovery key that ``./fn demo`` prints.

The module has its own rig (one device, no Docker): the session rig's last tests
revoke every device, and these tests must not depend on the order of files.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from meshagents.bus import APPROVAL_REQUEST_KEY
from meshagents.testbed.rig import Rig
from tests.e2e.conftest import ELEMENT_HOME as HOME
from tests.e2e.conftest import element_device_user as device_user
from tests.element.driver import ElementClient, ElementClientError

pytestmark = [pytest.mark.e2e, pytest.mark.root]



async def test_unverified_session_cannot_send_with_exclude_insecure(
    erig: Rig, element: ElementClient
) -> None:
    """With "exclude insecure devices" the SDK itself refuses to send from an unverified
    session: the operator must verify first (docs/element.md says so)."""
    room = await element.join(erig.rooms[HOME])
    with pytest.raises(ElementClientError, match="your device is not verified"):
        await element.send(room, "!exec ls /tmp")


async def test_unverified_session_is_told_to_verify(erig: Rig, tmp_path: Path) -> None:
    """With the setting off (Element's default today) an unverified session can send; the
    bot's answer must be readable there and say what to do."""
    async with ElementClient.spawn(tmp_path / "element-all.log") as element:
        await element.login(erig.homeserver_url, erig.operator_user, erig.operator_password, isolation="all")
        await _told_to_verify(erig, element)


async def _told_to_verify(erig: Rig, element: ElementClient) -> None:
    room = await element.join(erig.rooms[HOME])
    sent = await element.send(room, "!exec ls /tmp")
    reply = await element.wait_event(
        {"room_id": room, "sender": erig.bot_user, "after": sent["mark"], "undecryptable_ok": True,
         "type_in": ["m.room.message", "m.room.encrypted"],
         "settle_ms": 3000},
        timeout=60,
    )  # fmt: skip
    # issue 17's bug: MEGOLM_UNKNOWN_INBOUND_SESSION_ID, the bot shared no key with this session
    assert not reply["undecryptable"], reply
    assert "verify this session with your recovery key" in (reply["body"] or "").lower(), reply
    assert not reply["encrypted"]  # the plain notice (docs/element.md: why)


async def test_recovery_key_verifies_a_new_session_and_it_runs_a_command(
    erig: Rig, element: ElementClient
) -> None:
    before = await element.status()
    assert not before["device_verified"]
    after = await element.verify(erig.recovery_key)
    assert after["device_verified"] and after["cross_signing_ready"], after
    assert after["backup_version"], after  # key backup found and trusted: no "set up" nag
    room = await element.join(erig.rooms[HOME])
    sent = await element.send(room, "!exec ls /tmp")
    reply = await element.wait_event(
        {"room_id": room, "in_reply_to": sent["event_id"], "sender": device_user(erig)}, timeout=60
    )
    assert reply["encrypted"] and not reply["undecryptable"], reply
    assert "]: ok" in reply["body"].split("\n", 1)[0], reply["body"]


async def test_a_new_session_reads_older_answers_from_the_key_backup(
    erig: Rig, element: ElementClient, tmp_path: Path
) -> None:
    """Point 1's backup: session A (verified) receives an answer and backs its room key up
    (Element does that by itself once the backup is trusted); session B, logged in later
    and verified with the recovery key, reads that older answer."""
    await element.verify(erig.recovery_key)
    room = await element.join(erig.rooms[HOME])
    sent = await element.send(room, "!exec ls /tmp")
    reply = await element.wait_event(
        {"room_id": room, "in_reply_to": sent["event_id"], "sender": device_user(erig)}, timeout=60
    )
    await _backup_holds(erig, room, reply["session_id"])
    async with ElementClient.spawn(tmp_path / "element-later.log") as later:
        await later.login(erig.homeserver_url, erig.operator_user, erig.operator_password)
        await later.verify(erig.recovery_key)
        old = await later.wait_event({"event_id": reply["event_id"]}, timeout=60)
        assert old["body"] == reply["body"], old


async def test_element_reads_what_the_project_client_received_from_the_backup(
    erig: Rig, element: ElementClient
) -> None:
    """The project's own operator client (nio) uploads its room keys to the backup: an
    Element session verified afterwards reads the answer that client received."""
    op = erig.operator_client("backup-writer")
    await op.start()
    try:
        answer = await op.command(HOME, "!exec ls /tmp", timeout=60)
        event = await op.client.get_event(answer.room_id, answer.event_id)
        session_id = str(event.event.session_id)
        await _backup_holds(erig, answer.room_id, session_id)
    finally:
        await op.stop()
    await element.verify(erig.recovery_key)
    seen = await element.wait_event({"event_id": answer.event_id}, timeout=60)
    assert not seen["undecryptable"] and seen["body"] == answer.body, seen


async def _backup_holds(rig: Rig, room_id: str, session_id: str, timeout: float = 60.0) -> None:
    """Until the server's key backup holds that Megolm session (the SDK uploads within ~10 s)."""
    async with httpx.AsyncClient(base_url=rig.homeserver_url, timeout=30) as http:
        ident = {"type": "m.id.user", "user": rig.operator_user}
        body = {"type": "m.login.password", "identifier": ident, "password": rig.operator_password}
        token = (await http.post("/_matrix/client/v3/login", json=body)).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        try:
            version = (await http.get("/_matrix/client/v3/room_keys/version")).json()["version"]
            path = f"/_matrix/client/v3/room_keys/keys/{quote(room_id)}/{quote(session_id, safe='')}"
            deadline = asyncio.get_running_loop().time() + timeout
            while (await http.get(path, params={"version": version})).status_code != 200:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"session {session_id} never reached the key backup")
                await asyncio.sleep(0.5)
        finally:
            await http.post("/_matrix/client/v3/logout", json={})


async def test_element_approves(erig: Rig, element: ElementClient) -> None:
    """Element Web's 👍 goes out unencrypted (matrix-js-sdk never encrypts m.reaction), so
    it proves no verified session: the bot says so, readably, in #operator-approvals, and
    `!approve <id>` from the same session (an encrypted message) runs the command."""
    await element.verify(erig.recovery_key)
    room = await element.join(erig.rooms[HOME])
    approvals = await element.join(erig.rooms["approvals"])
    path = f"/tmp/element-{os.getpid()}.txt"
    sent = await element.send(room, f"!fs.write {path} written from Element")
    request = await element.wait_event(
        {"room_id": approvals, "has_key": APPROVAL_REQUEST_KEY, "body_contains": path}, timeout=60
    )
    approval_id = request["content"][APPROVAL_REQUEST_KEY]["approval_id"]
    reaction = await element.react(approvals, request["event_id"], "👍")
    ignored = await element.wait_event(
        {"room_id": approvals, "sender": erig.bot_user,
         "body_contains": f"ignored approval of request {approval_id}"},
        timeout=60,
    )  # fmt: skip
    assert not ignored["undecryptable"], ignored
    assert reaction
    await element.send(approvals, f"!approve {approval_id}")
    try:
        reply = await element.wait_event(
            {"room_id": room, "in_reply_to": sent["event_id"], "sender": device_user(erig)}, timeout=60
        )
    except ElementClientError:
        seen = [
            (e["room_id"] == room, e["sender"], e["type"], (e["body"] or "")[:200], e["in_reply_to"])
            for e in await element.events()
            if e["type"] in ("m.room.message", "m.room.encrypted", "m.reaction")
        ]
        raise AssertionError(f"no result; messages seen: {seen}") from None
    assert "]: ok" in reply["body"].split("\n", 1)[0], reply["body"]
    assert Path(path).read_text() == "written from Element"
