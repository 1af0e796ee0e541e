"""The agent's shipper against the hub's own ingest (meshagents/apps/wg_hub/audit_ingest.py), so
the two sides of the audit shipping contract are checked together: batches accepted
in order, a hub that lost entries answers 409 with expected_seq and gets them again,
a forged checkpoint is refused."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.apps.device_agent.shipping import Shipper, ShipRefused
from meshagents.apps.wg_hub.audit_ingest import chain_status, ingest
from meshagents.apps.wg_hub.store import HubStore
from meshagents.apps.wg_hub.web import STATUS
from meshagents.errors import FnError
from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore, load_signing_key
from tests.testbed.agent_rig import make_rig

pytestmark = pytest.mark.unit


async def test_shipper_and_hub_ingest_agree(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, sandbox=False, hub_url="http://hub.invalid")
    cfg = rig.config
    device_key = json.loads(rig.manifest_path.read_text())["device_key"]
    store = HubStore(tmp_path / "hub.db")

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/api/audit/{rig.device_id}"
        try:
            return httpx.Response(
                200, json=ingest(store, rig.device_id, device_key, json.loads(request.content))
            )
        except FnError as exc:
            return httpx.Response(STATUS.get(exc.code, 400), json=exc.to_json())

    pipe = Pipeline(cfg)
    key = load_signing_key(DEVICE_KEY, FileKeyStore(cfg.keys_dir))
    shipper = Shipper(cfg, pipe.audit, lambda: key, batch_size=4)
    ctx = Context(sandbox=False)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        for i in range(3):
            pipe.process(rig.content("shell.exec.echo", {"argv": ["echo", str(i)]}), None, ctx)
        pipe.process(rig.content("shell.exec.rm", {"argv": ["rm", "/"]}), None, ctx)  # a refusal: event entry
        while await shipper.ship_once(http):
            pass
        status = chain_status(store, rig.device_id, device_key)
        assert status["chain"]["ok"] and len(status["entries"]) == 7

        # the hub loses its last rows (restored from an old backup): 409, resend, same chain
        with store.tx() as db:
            db.execute("DELETE FROM device_audit WHERE device_id=? AND seq > 5", (rig.device_id,))
            db.execute("DELETE FROM device_audit_checkpoints WHERE device_id=? AND seq > 5", (rig.device_id,))
        pipe.process(rig.content("system.info", {}), None, ctx)
        while await shipper.ship_once(http):
            pass
        assert shipper.shipped_seq() == 9
        status = chain_status(store, rig.device_id, device_key)
        assert status["chain"]["ok"] and [e["hash"] for e in status["entries"]] == [
            e.hash for e in pipe.audit.entries()
        ]

        # a checkpoint signed by another key is refused, nothing stored
        pipe.process(rig.content("system.info", {}), None, ctx)
        forged = Shipper(cfg, pipe.audit, lambda: SigningKey.generate())
        with pytest.raises(ShipRefused):
            await forged.ship_once(http)
        assert len(chain_status(store, rig.device_id, device_key)["entries"]) == 9
    pipe.close()
