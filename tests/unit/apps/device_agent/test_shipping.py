"""Audit shipping against a stand-in hub that applies the contract (signature of the
checkpoint, chain continuity from its head, 409 with expected_seq, idempotent resend):
batches go out in order, a lost response or a hub that lost data is recovered from,
and nothing is dropped while the hub is unreachable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.apps.device_agent.shipping import Shipper, make_checkpoint
from meshagents.trust.audit import GENESIS, entry_hash
from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore, load_signing_key
from meshagents.trust.signing import TYPE_CHECKPOINT, verify_payload
from tests.testbed.agent_rig import Rig, make_rig

pytestmark = pytest.mark.unit


class Hub:
    """What the hub keeps per device, and the contract's answers."""

    def __init__(self, device_key: str) -> None:
        self.device_key = device_key
        self.entries: list[dict[str, Any]] = []
        self.up = True
        self.drop_response = False
        self.posts = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("mesh down", request=request)
        self.posts += 1
        body = json.loads(request.content)
        cp = body["checkpoint"]
        if cp["device_key"] != self.device_key or not verify_payload(
            cp, cp["signature"], self.device_key, TYPE_CHECKPOINT
        ):
            return httpx.Response(401, json={"error": "bad_checkpoint"})
        head = len(self.entries)
        for e in body["entries"]:
            if e["seq"] <= head:
                if self.entries[e["seq"] - 1]["hash"] != e["hash"]:
                    return httpx.Response(409, json={"error": "audit_chain_broken", "expected_seq": head + 1})
                continue
            prev = self.entries[-1]["hash"] if self.entries else GENESIS
            fields = {
                k: e[k]
                for k in (
                    "seq",
                    "kind",
                    "ts_ms",
                    "request_id",
                    "capability",
                    "args_digest",
                    "status",
                    "approval",
                    "detail",
                    "prev_hash",
                )
            }
            if (
                e["seq"] != len(self.entries) + 1
                or e["prev_hash"] != prev
                or entry_hash(**fields) != e["hash"]
            ):
                return httpx.Response(
                    409,
                    json={
                        "error": "audit_chain_broken",
                        "message": "gap",
                        "expected_seq": len(self.entries) + 1,
                    },
                )
            self.entries.append(e)
        if body["entries"] and (cp["seq"], cp["head_hash"]) != (
            body["entries"][-1]["seq"],
            body["entries"][-1]["hash"],
        ):
            return httpx.Response(400, json={"error": "checkpoint_mismatch"})
        if self.drop_response:
            self.drop_response = False
            raise httpx.ReadTimeout("response lost", request=request)
        return httpx.Response(200, json={"head_seq": len(self.entries)})


def _run(pipe: Pipeline, rig: Rig, n: int) -> None:
    for i in range(n):
        pipe.process(rig.content("shell.exec.echo", {"argv": ["echo", str(i)]}), None, Context(sandbox=False))


async def test_ship_batches_retry_and_recover(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, sandbox=False, hub_url="http://hub.invalid")
    cfg = rig.config
    pipe = Pipeline(cfg)
    key = load_signing_key(DEVICE_KEY, FileKeyStore(cfg.keys_dir))
    hub = Hub(json.loads(rig.manifest_path.read_text())["device_key"])
    shipper = Shipper(cfg, pipe.audit, lambda: key, batch_size=3)
    async with httpx.AsyncClient(transport=httpx.MockTransport(hub.handle)) as http:
        _run(pipe, rig, 2)  # 4 entries
        assert await shipper.ship_once(http) == 3
        assert await shipper.ship_once(http) == 1
        assert await shipper.ship_once(http) == 0
        assert shipper.shipped_seq() == 4 and len(hub.entries) == 4

        hub.up = False  # the mesh is down: entries wait, nothing is lost
        _run(pipe, rig, 1)
        with pytest.raises(httpx.ConnectError):
            await shipper.ship_once(http)
        assert shipper.shipped_seq() == 4
        hub.up = True
        hub.drop_response = True  # the hub stored the batch but the answer was lost
        with pytest.raises(httpx.ReadTimeout):
            await shipper.ship_once(http)
        assert await shipper.ship_once(http) == 2  # idempotent resend
        assert len(hub.entries) == 6

        del hub.entries[4:]  # the hub lost its last entries (restored from a backup)
        _run(pipe, rig, 1)
        assert await shipper.ship_once(http) == 3  # 409 -> resent at once from the hub's head
        assert shipper.shipped_seq() == 7
        while await shipper.ship_once(http):
            pass
        assert [e["hash"] for e in hub.entries] == [e.hash for e in pipe.audit.entries()]
    pipe.close()


def test_checkpoint_is_signed_by_the_device_key(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    cp = make_checkpoint(rig.device_id, 3, "a" * 64, rig.device, now=1)
    assert verify_payload(cp, cp["signature"], cp["device_key"], TYPE_CHECKPOINT)
    cp["seq"] = 4
    assert not verify_payload(cp, cp["signature"], cp["device_key"], TYPE_CHECKPOINT)
