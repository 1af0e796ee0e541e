"""Two-step signing: the hub holds the manifest, the operator signs it offline, the device then joins."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.runtime.api import call
from meshagents.trust import manifest as manifest_mod
from tests.testbed.hub_rig import ROOT, HubRig, hub_rig_cm, nsenter

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def offline_rig(tmp_path: Path) -> Iterator[HubRig]:
    state = tmp_path / "hub-state"
    state.mkdir(mode=0o700)
    old = os.environ.get("FN_STATE_DIR")
    try:
        with hub_rig_cm(tmp_path, state, signing="offline") as rig:
            yield rig
    finally:
        if old is None:
            os.environ.pop("FN_STATE_DIR", None)
        else:
            os.environ["FN_STATE_DIR"] = old


def test_operator_signs_offline_then_the_device_joins(offline_rig: HubRig, tmp_path: Path) -> None:
    rig = offline_rig
    dev = rig.new_device()
    argv = [
        *nsenter(dev.netns), str(ROOT / "pipelines" / "enroll_device"), "--token", rig.token(dev.name),
        "--hub", rig.public_url, "--interface", dev.interface, "--config-dir", str(dev.config_dir),
        "--no-systemd",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=rig.env(dev.state), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        pending: list[dict[str, Any]] = []
        for _ in range(300):
            pending = rig.operator("GET", "/api/manifests/pending").json()["pending"]
            if pending:
                break
            time.sleep(0.1)
        assert [p["device_id"] for p in pending] == [dev.name]
        assert not rig.device_has_interface(dev)  # nothing installed while it waits
        body = pending[0]["manifest"]
        # not the operator's signature, or not the body the hub prepared: refused
        rogue = manifest_mod.sign(body, SigningKey.generate()).model_dump(mode="json")
        r = rig.operator("POST", f"/api/manifests/{dev.name}", json=rogue)
        assert r.status_code == 422 and r.json()["error"] == "manifest_invalid_signature"
        # the operator's machine: capability_manifest_sign with the operator key
        os.environ["FN_STATE_DIR"] = str(rig.state)
        wider = tmp_path / "wider.json"
        wider.write_text(
            json.dumps({**body, "capabilities": [*body["capabilities"], {"name": "shell.exec.sh"}]})
        )
        r = rig.operator(
            "POST", f"/api/manifests/{dev.name}", json=call("capability_manifest_sign", manifest=wider)
        )
        assert r.status_code == 409 and r.json()["error"] == "manifest_mismatch"
        exact = tmp_path / "manifest.json"
        exact.write_text(json.dumps(body))
        r = rig.operator(
            "POST", f"/api/manifests/{dev.name}", json=call("capability_manifest_sign", manifest=exact)
        )
        assert r.status_code == 200, r.text
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "waiting for the operator to sign" in err.decode()
    assert json.loads(out)["device_id"] == dev.name
    assert rig.mesh.ping(dev, "10.42.0.1")
    assert rig.operator("GET", "/api/manifests/pending").json()["pending"] == []
