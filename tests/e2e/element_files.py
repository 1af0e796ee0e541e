"""Files both ways on the whole rig (the demo's hub, bot and enrolled agents, real Synapse):
an ``!fs.read`` of a binary file comes back as an encrypted ``m.file`` that nio's own
``decrypt_attachment`` opens to the exact bytes; a file the operator uploads is written
on the device after ✅ on the approval request, which shows its name, size and SHA-256.

Run from ``test_acceptance.py`` (``test_files_both_ways``), among the rows that run
before the rig's devices are revoked: the rig is one per session."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import aiohttp
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from meshagents.bus import APPROVAL_REQUEST_KEY
from meshagents.matrix.client import Incoming
from meshagents.testbed.rig import Rig
from meshagents.testbed.rig.operator import in_reply_to

HOME = "home-wsl"
SUFFIX = secrets.token_hex(3)


async def _download(op: Any, file_obj: dict[str, Any]) -> bytes:
    nio_client = op.client.nio_client
    server, media_id = str(file_obj["url"])[len("mxc://"):].split("/", 1)
    url = f"{nio_client.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}"
    async with aiohttp.ClientSession() as http, http.get(
            url, headers={"Authorization": f"Bearer {nio_client.access_token}"}) as resp:
        assert resp.status == 200, resp.status
        ciphertext = await resp.read()
    plain: bytes = decrypt_attachment(ciphertext, file_obj["key"]["k"], file_obj["hashes"]["sha256"],
                                      file_obj["iv"])
    return plain


async def _upload(op: Any, room: str, data: bytes, name: str) -> str:
    ciphertext, info = encrypt_attachment(data)
    nio_client = op.client.nio_client
    async with aiohttp.ClientSession() as http, http.post(
            f"{nio_client.homeserver}/_matrix/media/v3/upload?filename={name}", data=ciphertext,
            headers={"Authorization": f"Bearer {nio_client.access_token}",
                     "Content-Type": "application/octet-stream"}) as resp:
        assert resp.status == 200, await resp.text()
        mxc = (await resp.json())["content_uri"]
    content = {"msgtype": "m.file", "body": name, "filename": name,
               "info": {"size": len(data), "mimetype": "application/octet-stream"},
               "file": {**info, "url": mxc}}
    event_id: str = await op.client.send_custom(room, "m.room.message", content)
    return event_id


async def files_both_ways(rig: Rig) -> None:
    blob = os.urandom(100_000) + b"\x00"
    source = Path(f"/tmp/e2e-files-{SUFFIX}.bin")
    target = Path(f"/tmp/e2e-files-{SUFFIX}-written.bin")
    source.write_bytes(blob)
    device_user = rig.devices[HOME].matrix_user
    op = rig.operator_client(f"files-{SUFFIX}")
    await op.start()
    try:
        await op.command(HOME, "!exec ls /tmp", timeout=60)  # warm: room keys shared
        reply = await op.command(HOME, f"!fs.read {source}", timeout=60)
        assert "follows as the encrypted file" in reply.body
        assert hashlib.sha256(blob).hexdigest() in reply.body
        cmd = reply.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        file_ev: Incoming = await op.wait_message(
            lambda e: e.sender == device_user and e.content.get("msgtype") == "m.file"
            and in_reply_to(e.content) == cmd, timeout=60)
        assert file_ev.content["body"] == source.name
        assert await _download(op, file_ev.content["file"]) == blob

        room = await op.device_room(HOME)
        data = os.urandom(2000)
        upload = await _upload(op, room, data, "payload.bin")
        await op.client.send_custom(room, "m.room.message", {
            "msgtype": "m.text", "body": f"!fs.write {target}",
            "m.relates_to": {"m.in_reply_to": {"event_id": upload}}})
        approvals = await op.approvals_room()
        request = await op.wait_message(
            lambda e: e.room_id == approvals
            and (e.content.get(APPROVAL_REQUEST_KEY) or {}).get("capability") == "fs.write"
            and "payload.bin" in (e.body or ""), timeout=60)
        request_event = request.event_id
        text = request.body or ""
        assert "payload.bin" in text and "2000 bytes" in text and hashlib.sha256(data).hexdigest() in text
        assert request.content[APPROVAL_REQUEST_KEY]["capability"] == "fs.write"
        await op.approve(request_event, "✅")
        await op.wait_message(lambda e: e.sender == device_user and "]: ok" in (e.body or "")
                              and f"{len(data)} bytes" in (e.body or ""), timeout=60)
        assert target.read_bytes() == data
    finally:
        await op.stop()
        for path in (source, target):
            path.unlink(missing_ok=True)
