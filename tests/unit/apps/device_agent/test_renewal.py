"""A re-issued manifest: the agent takes a newer operator-signed one, refuses the old one afterwards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from meshagents.apps.device_agent import renewal
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.errors import FnError
from meshagents.trust import manifest as trust_manifest
from tests.testbed.agent_rig import make_rig


def _signed(data: dict[str, Any], key: SigningKey, **changes: Any) -> dict[str, Any]:
    return trust_manifest.sign({**data, **changes}, key).model_dump(mode="json")


def test_newer_manifest_is_installed_and_the_old_one_refused_afterwards(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    p = Pipeline(rig.config)
    try:
        first = json.loads(rig.manifest_path.read_text())
        caps = [c for c in first["capabilities"] if c["name"] != "shell.exec.sh"]
        second = _signed(first, rig.operator, serial=2, capabilities=[*caps, {"name": "shell.exec.true"}])
        got = renewal.apply(p, second)
        assert got is not None and (got.old_serial, got.new_serial) == (1, 2)
        assert got.added == ["shell.exec.true"] and got.removed == ["shell.exec.sh"]
        assert p.manifest().serial == 2 and json.loads(rig.manifest_path.read_text()) == second
        assert renewal.apply(p, second) is None  # the same again: nothing to do
        # a hub replaying the previous manifest (validly signed) is refused, and the chain says so
        with pytest.raises(FnError) as err:
            renewal.apply(p, first)
        assert err.value.code == "manifest_serial_rollback"
        statuses = [(e.status, e.detail) for e in p.audit.entries()]
        assert statuses[0][0] == "manifest_updated" and "serial 1 → 2" in statuses[0][1]
        assert statuses[1][0] == "manifest_refused" and "manifest_serial_rollback" in statuses[1][1]
        assert p.audit.verify().ok
    finally:
        p.close()


@pytest.mark.parametrize(
    ("how", "code"),
    [("foreign key", "manifest_invalid_signature"), ("other device key", "manifest_mismatch"),
     ("same serial", "manifest_serial_rollback")],
)  # fmt: skip
def test_refusals(tmp_path: Path, how: str, code: str) -> None:
    rig = make_rig(tmp_path)
    p = Pipeline(rig.config)
    try:
        first = json.loads(rig.manifest_path.read_text())
        if how == "foreign key":
            raw = _signed(first, SigningKey.generate(), serial=5)
        elif how == "other device key":
            raw = _signed(first, rig.operator, serial=5, device_key=first["wg_public_key"])
        else:
            raw = _signed(first, rig.operator, expires_at=first["expires_at"] + 1)
        with pytest.raises(FnError) as err:
            renewal.apply(p, raw)
        assert err.value.code == code
        assert p.manifest().serial == 1
    finally:
        p.close()


def test_poll_once_refuses_a_manifest_once(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, hub_url="http://hub.test")
    p = Pipeline(rig.config)
    first = json.loads(rig.manifest_path.read_text())
    rogue = _signed(first, SigningKey.generate(), serial=9)
    served = {"manifest": rogue}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/api/manifest/{rig.device_id}"
        return httpx.Response(200, json=served)

    async def run() -> list[Any]:
        refused: set[str] = set()
        out: list[Any] = []
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            with pytest.raises(FnError):
                await renewal.poll_once(p, http, refused)
            out.append(await renewal.poll_once(p, http, refused))  # the same rogue one: skipped
            served["manifest"] = _signed(first, rig.operator, serial=2)
            out.append(await renewal.poll_once(p, http, refused))
        return out

    try:
        skipped, got = asyncio.run(run())
        assert skipped is None and got is not None and got.new_serial == 2
        assert [e.status for e in p.audit.entries()] == ["manifest_refused", "manifest_updated"]
    finally:
        p.close()
