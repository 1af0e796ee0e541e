"""A hub signing manifests with a key that is not the operator's: the device refuses, installs nothing."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.hub_rig import HubRig, hub_rig_cm

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def rogue_rig(tmp_path: Path) -> Iterator[HubRig]:
    state = tmp_path / "hub-state"
    state.mkdir(mode=0o700)
    old = os.environ.get("FN_STATE_DIR")
    try:
        with hub_rig_cm(tmp_path, state, manifest_key=f"rogue{secrets.token_hex(2)}/ed25519") as rig:
            yield rig
    finally:
        if old is None:
            os.environ.pop("FN_STATE_DIR", None)
        else:
            os.environ["FN_STATE_DIR"] = old


def test_manifest_signed_by_other_key_is_refused(rogue_rig: HubRig) -> None:
    rig = rogue_rig
    dev = rig.new_device()
    proc = rig.enroll(dev, rig.token(dev.name))
    assert proc.returncode != 0
    assert "manifest_invalid_signature" in proc.stderr
    # nothing installed on the device: no interface, no manifest kept, no operator key pinned
    assert not rig.device_has_interface(dev)
    assert not (dev.state / "enrollment" / "manifest.json").exists()
    assert not (dev.state / "enrollment" / "client.conf").exists()
    assert not (dev.state / "trust" / "operator.pub").exists()
    # the hub logged the refusal and took the peer back
    assert "manifest_invalid_signature" in rig.log_text()
    log = rig.operator("GET", "/api/log", params={"kind": "manifest_invalid_signature"}).json()["log"]
    assert [e["device_id"] for e in log] == [dev.name]
    status = rig.mesh.call("wg_status", **rig.mesh.hub_args)
    assert status["peers"] == []
    peers = rig.operator("GET", "/api/peers").json()["peers"]
    assert [p["status"] for p in peers if p["name"] == dev.name] == ["removed"]
