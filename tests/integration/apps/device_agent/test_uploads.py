"""The device agent writes an uploaded file only when the bytes it downloads itself are
the ones the signed envelope names: a wrong SHA-256 of the plaintext is
``file_hash_mismatch``, a wrong ciphertext hash ``attachment_hash_mismatch``, a wrong
size ``file_size_mismatch``; nothing is written then, and the audit chain holds the
refusal as the request's outcome."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from meshagents.matrix import attachments
from tests.testbed.agent_world import MakeWorld

pytestmark = pytest.mark.integration


def caps(rig_root: Path) -> list[dict[str, Any]]:
    return [{"name": "fs.write", "path_prefixes": [str(rig_root / "writable")],
             "texts": {"content": 1 << 20, "file": 4096}}]


async def test_the_agent_checks_the_uploaded_bytes_itself(make_world: MakeWorld, tmp_path: Path) -> None:
    world = await make_world()
    root = tmp_path / "a"
    agent, rig = await world.add_agent(root, capabilities=caps(root))
    room = world.rooms[rig.device_id]
    data = os.urandom(5000)
    # the operator's upload (encrypted, as in the bot's tests; here through our helper)
    _, ref = await attachments.send_file(world.operator, room, data, name="blob.bin")
    good = attachments.FileArg(ref, hashlib.sha256(data).hexdigest(), len(data), "blob.bin")

    cases = {
        "file_hash_mismatch": attachments.FileArg(ref, "0" * 64, len(data), "blob.bin"),
        "file_size_mismatch": attachments.FileArg(ref, good.sha256, len(data) + 1, "blob.bin"),
        "attachment_hash_mismatch": attachments.FileArg(
            attachments.EncryptedFile(ref.url, ref.key, ref.iv, "A" * 43), good.sha256, len(data),
            "blob.bin"),
        "file_and_content": good,
    }
    for code, arg in cases.items():
        target = rig.writable / f"{code}.bin"
        args = {"path": str(target), "file": arg.to_arg()}
        if code == "file_and_content":
            args["content"] = "x"
        content = rig.content("fs.write", args)
        await world.send(rig, content)
        res, notice = await world.result(rig, content["envelope"]["request_id"])
        assert res.content["status"] == "error" and res.content["reason"] == code, res.content
        assert code in (notice.body or "")
        assert not target.exists()

    target = rig.writable / "ok.bin"
    content = rig.content("fs.write", {"path": str(target), "file": good.to_arg()})
    await world.send(rig, content)
    res, _ = await world.result(rig, content["envelope"]["request_id"])
    assert res.content["status"] == "ok", res.content
    assert target.read_bytes() == data
    entries = agent.pipeline.audit.entries()
    assert agent.pipeline.audit.verify().ok
    refused = [e for e in entries if e.kind == "outcome" and e.status == "error"]
    assert {e.detail for e in refused} == set(cases)
