"""Element's conventions for real work, bot + real device agent on a real Synapse:

- an output over the notice limit and an ``!fs.read`` of a binary file arrive as
  encrypted ``m.file`` replies, which the operator downloads from the media repository
  and decrypts with nio's own ``decrypt_attachment`` (not our sending code) to the
  exact bytes;
- ``!fs.write <path>`` replying to an encrypted upload: the approval request shows the
  file's name, size and SHA-256; ✅ (sent encrypted, as Element does) writes exactly
  the uploaded bytes; ❌ denies and nothing is written;
- ``!help`` is an HTML table with a plain-text fallback;
- a long command's reply is one message edited in place (``m.replace``), at most once a
  second, its last edit the answer, the device typing meanwhile; ``!cancel <id>`` (a
  signed ``control.cancel`` request) stops a running one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from meshagents.apps.agents_and_robots.directory import FileDirectory, LocalHub
from meshagents.apps.agents_and_robots.shell import BotShell, ShellConfig
from meshagents.apps.device_agent.agent import DeviceAgent
from meshagents.bus import APPROVAL_REQUEST_KEY, LIVE_KEY
from meshagents.matrix.client import Incoming, MatrixClient
from meshagents.matrix.rooms import power_levels
from meshagents.trust.keystore import CONTROLLER_KEY, open_keystore
from meshagents.trust.signing import public_b64
from tests.testbed.agent_rig import Rig, make_rig
from tests.testbed.bot_world import FAST
from tests.testbed.results import on_results
from tests.testbed.synapse import SynapseServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def wait(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return got


@dataclass
class Fleet:
    operator: MatrixClient
    shell: BotShell
    agent: DeviceAgent
    rig: Rig
    room: str
    dev_user: str
    seen: list[Incoming] = field(default_factory=list)
    results: list[Incoming] = field(default_factory=list)

    @property
    def approvals(self) -> str:
        assert self.shell.approvals_room is not None
        return self.shell.approvals_room

    def from_device(self, match: Callable[[Incoming], bool]) -> list[Incoming]:
        return [e for e in self.seen if e.sender == self.dev_user and match(e)]

    def replies_to(self, event_id: str, msgtype: str) -> list[Incoming]:
        return self.from_device(lambda e: e.content.get("msgtype") == msgtype and (
            e.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == event_id))

    async def request_for(self, cmd: str) -> Incoming:
        """The approval request the bot posted for the operator's command ``cmd``."""
        row = await wait(lambda: [r for r in self.shell.store.recent(20) if r.command_event_id == cmd
                                  and r.approval_id], 30, "the approval row")
        approval_id = row[0].approval_id
        req: list[Incoming] = await wait(lambda: [
            e for e in self.seen if e.room_id == self.approvals
            and (e.content.get(APPROVAL_REQUEST_KEY) or {}).get("approval_id") == approval_id],
            30, "the request")
        return req[0]

    async def final_row(self, cmd: str) -> Any:
        waiting = ("received", "pending_approval", "approved", "sent")
        rows = await wait(lambda: [r for r in self.shell.store.recent(20)
                                   if r.command_event_id == cmd and r.status not in waiting],
                          60, "the answer")
        return rows[0]


@contextlib.asynccontextmanager
async def fleet(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Fleet]:
    op_user, op_pw = synapse.new_user("operator")
    bot_user, bot_pw = synapse.new_user("bot")
    dev_user, dev_pw = synapse.new_user("device")
    name = synapse.unique("dev")
    approvals_alias = synapse.unique("operator-approvals")
    files = tmp_path / "agent" / "files"
    writable = tmp_path / "agent" / "writable"
    caps: list[dict[str, Any]] = [
        {"name": "shell.exec.head", "executables": ["/usr/bin/head"], "flags": [{"name": "-c", "arity": 1}],
         "path_prefixes": [str(files)], "output_cap_bytes": 65536, "attachment_cap_bytes": 1 << 20},
        {"name": "fs.read", "path_prefixes": [str(files)], "output_cap_bytes": 4096,
         "attachment_cap_bytes": 1 << 20, "limits": {"max_bytes": 1 << 20}},
        {"name": "fs.write", "path_prefixes": [str(writable)], "texts": {"content": 1 << 20, "file": 4096},
         "requires_approval": True},
        {"name": "shell.exec.sh", "executables": ["/usr/bin/sh"], "flags": ["-c"], "timeout_s": 300},
        {"name": "control.cancel", "texts": {"request_id": 128}},
    ]
    operator = MatrixClient(synapse.client_config(op_user, op_pw, tmp_path / "operator",
                                                  accept_invites_from=(bot_user,),
                                                  sync_ephemeral=True, **FAST))  # it checks typing
    shell: BotShell | None = None
    agent: DeviceAgent | None = None
    try:
        await operator.start()
        room = await operator.create_room(alias=f"dev-{name}", invite=[bot_user, dev_user],
                                          power_levels=power_levels([op_user], bot_user, dev_user))
        rig = make_rig(tmp_path / "agent", capabilities=caps, approvers=[op_user], device_id=name,
                       homeserver=synapse.url, matrix_user=dev_user, matrix_password=dev_pw, device_room=room,
                       approvals_room=f"#{approvals_alias}:{synapse.server_name}", bot_users=[bot_user])
        open_keystore().put(CONTROLLER_KEY, bytes(rig.controller))
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
        f = Fleet(operator, shell, agent, rig, room, dev_user)

        async def on_message(ev: Incoming) -> None:
            f.seen.append(ev)

        async def on_result(ev: Incoming) -> None:
            f.results.append(ev)

        operator.on_message(on_message)
        on_results(operator, on_result)
        yield f
    finally:
        if agent is not None:
            await agent.stop()
        if shell is not None:
            await shell.stop()
        await operator.stop()


async def fetch_plain(client: MatrixClient, file_obj: dict[str, Any]) -> bytes:
    """What Element does with an m.file: GET the ciphertext (authenticated media), then
    decrypt it with the key and IV from the event (nio's decrypt_attachment checks the hash)."""
    nio_client = client.nio_client
    server, media_id = str(file_obj["url"])[len("mxc://"):].split("/", 1)
    url = f"{nio_client.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}"
    async with aiohttp.ClientSession() as http, http.get(
            url, headers={"Authorization": f"Bearer {nio_client.access_token}"}) as resp:
        assert resp.status == 200, resp.status
        ciphertext = await resp.read()
    plain: bytes = decrypt_attachment(ciphertext, file_obj["key"]["k"], file_obj["hashes"]["sha256"],
                                      file_obj["iv"])
    return plain


async def upload_as_element(client: MatrixClient, room: str, data: bytes, name: str) -> str:
    """An encrypted upload as Element sends it: nio's encrypt_attachment, POST to the
    media repository, an m.file event carrying the key."""
    ciphertext, info = encrypt_attachment(data)
    nio_client = client.nio_client
    async with aiohttp.ClientSession() as http, http.post(
            f"{nio_client.homeserver}/_matrix/media/v3/upload?filename={name}", data=ciphertext,
            headers={"Authorization": f"Bearer {nio_client.access_token}",
                     "Content-Type": "application/octet-stream"}) as resp:
        assert resp.status == 200, await resp.text()
        mxc = (await resp.json())["content_uri"]
    content = {"msgtype": "m.file", "body": name, "filename": name,
               "info": {"size": len(data), "mimetype": "application/octet-stream"},
               "file": {**info, "url": mxc}}
    return await client.send_custom(room, "m.room.message", content)


async def reply_text(client: MatrixClient, room: str, to: str, body: str) -> str:
    content = {"msgtype": "m.text", "body": body, "m.relates_to": {"m.in_reply_to": {"event_id": to}}}
    return await client.send_custom(room, "m.room.message", content)


async def test_big_output_and_binary_read_arrive_as_encrypted_files_and_help_is_a_table(
        synapse: SynapseServer, tmp_path: Path, state_dir: Path) -> None:
    async with fleet(synapse, tmp_path) as f:
        files = f.rig.files
        text = "".join(f"line {i:06d} of a long log\n" for i in range(5000)).encode()  # ~130 KB
        (files / "big.log").write_bytes(text)
        blob = os.urandom(40_000) + b"\x00"
        (files / "blob.bin").write_bytes(blob)

        cmd = await f.operator.send_text(f.room, f"!exec head -c 65536 {files}/big.log")
        (file_ev,) = await wait(lambda: f.replies_to(cmd, "m.file"), 60, "the output file")
        got = await fetch_plain(f.operator, file_ev.content["file"])
        assert got == text[:65536]  # the capability's output cap, exactly, no truncation note
        assert file_ev.content["info"]["size"] == 65536 and "url" not in file_ev.content
        assert file_ev.decrypted  # the m.file event itself went encrypted
        (notice,) = await wait(lambda: f.replies_to(cmd, "m.notice"), 30, "the notice")
        assert hashlib.sha256(got).hexdigest() in (notice.body or "")
        assert "follows as the encrypted file" in (notice.body or "") and len(notice.body or "") < 4000
        assert (await f.final_row(cmd)).status == "ok"

        cmd = await f.operator.send_text(f.room, f"!fs.read {files}/blob.bin")
        (file_ev,) = await wait(lambda: f.replies_to(cmd, "m.file"), 60, "the binary file")
        assert file_ev.content["body"] == "blob.bin"
        assert await fetch_plain(f.operator, file_ev.content["file"]) == blob
        (notice,) = await wait(lambda: f.replies_to(cmd, "m.notice"), 30, "the notice")
        assert "\ufffd" not in (notice.body or "")  # no mojibake of the binary inline

        cmd = await f.operator.send_text(f.room, f"!fs.read {files}/hello.txt")  # small text: inline
        (notice,) = await wait(lambda: f.replies_to(cmd, "m.notice"), 30, "the inline answer")
        assert "hello from the device" in (notice.body or "") and not f.replies_to(cmd, "m.file")

        cmd = await f.operator.send_text(f.room, "!help")
        (help_ev,) = await wait(lambda: [e for e in f.seen if e.sender == f.shell.client.user_id and (
            e.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == cmd)], 30, "!help")
        html_body = help_ev.content.get("formatted_body", "")
        assert help_ev.content.get("format") == "org.matrix.custom.html"
        assert html_body.count("<table>") == 1 and "<th>capability</th>" in html_body
        for cap in ("shell.exec.head", "fs.read", "fs.write"):
            assert f"<td><code>{cap}</code></td>" in html_body
            assert f"  {cap}: " in (help_ev.body or "")  # the plain-text fallback


async def test_uploaded_file_is_written_with_approval_and_denied_with_a_cross(
        synapse: SynapseServer, tmp_path: Path, state_dir: Path) -> None:
    async with fleet(synapse, tmp_path) as f:
        data = os.urandom(3000) + b"\x00binary\xff"
        digest = hashlib.sha256(data).hexdigest()
        upload = await upload_as_element(f.operator, f.room, data, "firmware.bin")
        target = f.rig.writable / "firmware.bin"

        cmd = await reply_text(f.operator, f.room, upload, f"!fs.write {target}")
        req = await f.request_for(cmd)
        assert "firmware.bin" in (req.body or "") and f"{len(data)} bytes" in (req.body or "")
        assert digest in (req.body or "")
        assert "\"key\"" not in (req.body or "")  # the file's key stays out of the approvals room
        await f.operator.send_reaction(f.approvals, req.event_id, "✅", encrypted=True)
        row = await f.final_row(cmd)
        assert row.status == "ok", row
        assert target.read_bytes() == data
        assert f.agent.pipeline.audit.verify().ok

        other = f.rig.writable / "denied.bin"
        cmd = await reply_text(f.operator, f.room, upload, f"!fs.write {other}")
        req = await f.request_for(cmd)
        await f.operator.send_reaction(f.approvals, req.event_id, "❌", encrypted=True)
        row = await f.final_row(cmd)
        assert row.status == "denied", row
        assert not other.exists()

        # a reply to something that is not a file is refused with its code, nothing asked
        plain = await f.operator.send_text(f.room, "just words")
        cmd = await reply_text(f.operator, f.room, plain, f"!fs.write {other}")
        await wait(lambda: [e for e in f.seen if e.sender == f.shell.client.user_id
                            and "not_a_file" in (e.body or "")], 30, "the not_a_file refusal")


def _live(f: Fleet, cmd: str) -> list[Incoming]:
    return [e for e in f.replies_to(cmd, "m.notice")
            if (e.content.get(LIVE_KEY) or {}).get("state") == "running"]


def _edits(f: Fleet, event_id: str) -> list[Incoming]:
    return f.from_device(lambda e: e.content.get("m.relates_to", {}).get("rel_type") == "m.replace"
                         and e.content["m.relates_to"].get("event_id") == event_id)


async def test_long_command_is_edited_in_place_and_cancel_stops_it(
        synapse: SynapseServer, tmp_path: Path, state_dir: Path) -> None:
    async with fleet(synapse, tmp_path) as f:
        script = "for i in 1 2 3 4 5; do echo tick $i; sleep 1; done"
        cmd = await f.operator.send_text(f.room, f"!exec sh -c '{script}'")
        (placeholder,) = await wait(lambda: _live(f, cmd), 30, "the live message")
        rid = placeholder.content[LIVE_KEY]["request_id"]
        assert f"!cancel {rid}" in (placeholder.body or "")
        await wait(lambda: f.dev_user in f.operator.nio_client.rooms[f.room].typing_users, 30, "typing")
        final = await wait(lambda: [e for e in _edits(f, placeholder.event_id)
                                    if e.content[LIVE_KEY]["state"] == "final"], 60, "the final edit")
        new = final[0].content["m.new_content"]
        assert f"[{rid}]: ok" in new["body"] and "tick 5" in new["body"]
        assert final[0].content["body"].startswith("* ")  # the fallback for clients without edits
        edits = _edits(f, placeholder.event_id)
        assert len(edits) >= 2 and edits[-1].event_id == final[0].event_id  # running edits, then the answer
        assert len(f.replies_to(cmd, "m.notice")) == 1  # one message, edited; no second answer
        times = f.agent.live_edits[rid]  # when each message/edit was sent (agent's monotonic clock)
        assert len(times) == len(edits) + 1
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))  # at most one a second
        await wait(lambda: f.dev_user not in f.operator.nio_client.rooms[f.room].typing_users, 30,
                   "typing off")

        cmd = await f.operator.send_text(f.room, "!exec sh -c 'echo started; sleep 240; echo never'")
        (placeholder,) = await wait(lambda: _live(f, cmd), 30, "the live message")
        rid = placeholder.content[LIVE_KEY]["request_id"]
        stop = await f.operator.send_text(f.room, f"!cancel {rid}")
        assert (await f.final_row(stop)).status == "ok"
        row = await f.final_row(cmd)
        assert row.status == "error" and "cancelled" in (row.reason or ""), row
        final = await wait(lambda: [e for e in _edits(f, placeholder.event_id)
                                    if e.content[LIVE_KEY]["state"] == "final"], 30, "the final edit")
        assert "cancelled" in final[0].content["m.new_content"]["body"]
        assert "never" not in final[0].content["m.new_content"]["body"]
        entries = f.agent.pipeline.audit.entries()
        assert any(e.request_id == rid and e.kind == "outcome" and e.detail == "cancelled" for e in entries)

        stop = await f.operator.send_text(f.room, f"!cancel {rid}")  # not running any more
        row = await f.final_row(stop)
        assert row.status == "error" and "not_running" in (row.reason or ""), row
