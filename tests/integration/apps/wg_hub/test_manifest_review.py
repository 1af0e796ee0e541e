"""Offline signing a stolen hub cannot abuse (real hub, real wireguard-go, the real pipelines).

A hub that tampers with a pending manifest — an extra capability, a wider path prefix, a
lifted approval, a foreign controller — gets nothing signed: sign_pending_manifests shows
the table and names the difference. With --allow the intended extra capability is
signed, and then the device itself refuses it: beyond the profile its token pinned. A
re-issue raises the serial; the device's agent core takes it and refuses the old one.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from meshagents.apps.device_agent import renewal
from meshagents.apps.device_agent.config import load as load_agent_config
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.errors import FnError
from meshagents.trust.keystore import CONTROLLER_KEY, FileKeyStore, load_signing_key
from meshagents.trust.signing import public_b64
from tests.testbed.hub_rig import ROOT, DeviceNs, HubRig, hub_rig_cm, in_netns, nsenter

pytestmark = [pytest.mark.integration, pytest.mark.root]

APPROVERS = ["@operator:hub.test"]  # what the rig's hub config names, and the operator's own config


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


def operator_env(rig: HubRig, tmp_path: Path) -> dict[str, str]:
    """The operator's machine: the operator key (here in the rig's state) and its own config."""
    controller = public_b64(load_signing_key(CONTROLLER_KEY, FileKeyStore(rig.state / "keys")))
    cfg = tmp_path / "operator.toml"
    cfg.write_text(f"controllers = {json.dumps([controller])}\napprovers = {json.dumps(APPROVERS)}\n")
    return dict(rig.env(rig.state), FN_OPERATOR_CONFIG=str(cfg))


def start_enroll(rig: HubRig, dev: DeviceNs, token: str) -> subprocess.Popen[bytes]:
    argv = [
        *nsenter(dev.netns), str(ROOT / "pipelines" / "enroll_device"), "--token", token,
        "--hub", rig.public_url, "--interface", dev.interface, "--config-dir", str(dev.config_dir),
        "--no-systemd",
    ]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=ROOT, env=rig.env(dev.state), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_pending(rig: HubRig, name: str) -> dict[str, Any]:
    for _ in range(300):
        pending = rig.operator("GET", "/api/manifests/pending").json()["pending"]
        if any(p["device_id"] == name for p in pending):
            return next(p for p in pending if p["device_id"] == name)
        time.sleep(0.1)
    raise AssertionError(f"no pending manifest for {name}")


def tamper(rig: HubRig, name: str, body: dict[str, Any]) -> None:
    """What a hub taken over does: rewrite the manifest it prepared before the operator looks."""
    with sqlite3.connect(rig.state / "wg_hub" / "operations.db") as db:
        db.execute("UPDATE pending_manifests SET body = ? WHERE device_id = ?", (json.dumps(body), name))


def sign_pending(rig: HubRig, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*nsenter(rig.hub_ns), str(ROOT / "pipelines" / "sign_pending_manifests"),
            "--config", str(rig.workdir / "wg_hub.toml"), *args]  # fmt: skip
    # a new session: no controlling terminal, as under cron or CI
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def edit(caps: list[dict[str, Any]], name: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**c, **changes} if c["name"] == name else c for c in caps]


def test_tampered_pending_manifests_are_refused_and_the_device_refuses_beyond_its_token(
    offline_rig: HubRig, tmp_path: Path
) -> None:
    rig = offline_rig
    env = operator_env(rig, tmp_path)
    dev = rig.new_device()
    proc = start_enroll(rig, dev, rig.token(dev.name, profile="workstation"))
    try:
        body = wait_pending(rig, dev.name)["manifest"]
        caps = body["capabilities"]
        foreign = public_b64(SigningKey.generate())
        sh = {**next(c for c in caps if c["name"] == "shell.exec.cat"), "name": "shell.exec.sh",
              "executables": ["/bin/sh"], "path_prefixes": []}  # fmt: skip
        cases = [
            ({**body, "capabilities": [*caps, sh]}, "shell.exec.sh: not in the profile"),
            ({**body, "capabilities": edit(caps, "shell.exec.ls", path_prefixes=["/"])},
             "shell.exec.ls: path_prefixes / not under /home,/tmp"),
            ({**body, "capabilities": edit(caps, "system.reboot", requires_approval=False)},
             "system.reboot: requires_approval lifted"),
            ({**body, "controllers": [*body["controllers"], foreign]},
             f"controllers: not in your configuration: {foreign}"),
        ]  # fmt: skip
        for tampered, named in cases:
            tamper(rig, dev.name, tampered)
            res = sign_pending(rig, env, "--yes")
            assert res.returncode == 3, res.stderr
            assert f"REFUSED {dev.name}" in res.stderr and named in res.stderr, res.stderr
            assert "capability" in res.stderr and "path prefixes" in res.stderr  # the table was shown
            assert [
                p["device_id"] for p in rig.operator("GET", "/api/manifests/pending").json()["pending"]
            ] == [dev.name]
        # the exact profile, but nobody at a terminal and no --yes: not signed either
        tamper(rig, dev.name, body)
        res = sign_pending(rig, env)
        assert res.returncode == 3 and "pass --yes" in res.stderr, res.stderr
        # the operator means it: --allow the extra capability, and it is signed and handed over
        tamper(rig, dev.name, {**body, "capabilities": [*caps, sh]})
        res = sign_pending(rig, env, "--allow", "shell.exec.sh", "--yes")
        assert res.returncode == 0, res.stderr
        assert (
            "[allowed] shell.exec.sh: not in the profile" in res.stderr and f"signed {dev.name}" in res.stderr
        )
        # ... and the device refuses it: validly signed, but beyond the profile its token pinned
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "manifest_beyond_token" in err.decode() and "shell.exec.sh" in err.decode()
    assert not rig.device_has_interface(dev)
    assert not (dev.state / "enrollment" / "manifest.json").exists()


def operator_public(rig: HubRig) -> str:
    return public_b64(load_signing_key("operator/ed25519", FileKeyStore(rig.state / "keys")))


def agent_pipeline(rig: HubRig, dev: DeviceNs, enrolled: dict[str, Any]) -> Pipeline:
    """The device agent's core over the enrolled device's files (its Matrix shell is not needed here)."""
    cfg = dev.state / "agent.json"
    cfg.write_text(
        json.dumps(
            {
                "device_id": dev.name, "device_name": dev.name, "manifest_path": enrolled["manifest_file"],
                "operator_key": operator_public(rig),
                "homeserver": "http://127.0.0.1:9", "matrix_user": "@dev:hub.test", "matrix_password": "x",
                "device_room": "#dev:hub.test", "approvals_room": "#operator-approvals:hub.test",
                "hub_url": f"http://10.42.0.1:{8000}", "data_dir": str(dev.state / "agent"),
                # the device's own chain, beside its state (outside /tmp, which the profile grants)
                "audit_path": str(dev.state / "agent" / "audit.sqlite"),
            }
        )
    )  # fmt: skip
    cfg.chmod(0o600)
    return Pipeline(load_agent_config(cfg))


def test_reissue_raises_the_serial_the_device_takes_it_and_refuses_the_old_one(
    offline_rig: HubRig, tmp_path: Path
) -> None:
    rig = offline_rig
    env = operator_env(rig, tmp_path)
    dev = rig.new_device()
    proc = start_enroll(rig, dev, rig.token(dev.name, profile="minimal"))
    try:
        wait_pending(rig, dev.name)
        res = sign_pending(rig, env, "--yes")
        assert res.returncode == 0, res.stderr
        assert "differences: none (exactly the profile)" in res.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    enrolled = json.loads(out)
    first = json.loads(Path(enrolled["manifest_file"]).read_text())
    assert first["serial"] == 1

    # a deliberate widening (minimal -> workstation): shown, signed here, handed to the hub
    reissue = subprocess.run(
        [*nsenter(rig.hub_ns), str(ROOT / "fn"), "run", "capability_manifest_reissue",
         "--device-name", dev.name, "--profile", "workstation", "--yes",
         "--config", str(rig.workdir / "wg_hub.toml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert reissue.returncode == 0, reissue.stderr
    assert json.loads(reissue.stdout)["serial"] == 2
    assert "serial 2 (previous 1)" in reissue.stderr
    assert "shell.exec.ls: new since the previous manifest" in reissue.stderr
    # shown the same way: what goes beyond the profile the enrollment token named
    assert "^ [note] shell.exec.ls: not in the profile (token profile minimal)" in reissue.stderr
    served = rig.operator("GET", f"/api/manifest/{dev.name}").json()
    assert served["serial"] == 2
    # the hub refuses to go back
    r = rig.operator("POST", f"/api/manifests/{dev.name}", json=first)
    assert r.status_code == 409 and r.json()["error"] == "manifest_serial_rollback"

    # the device agent's core, in the device's namespace, over the mesh
    pipeline = agent_pipeline(rig, dev, enrolled)

    async def poll() -> renewal.Renewal | None:
        async with httpx.AsyncClient(timeout=10) as http:
            return await renewal.poll_once(pipeline, http, set())

    try:
        got = in_netns(dev.netns, asyncio.run, poll())
        assert got is not None and (got.old_serial, got.new_serial) == (1, 2)
        assert "shell.exec.ls" in got.added
        assert pipeline.manifest().serial == 2
        with pytest.raises(FnError) as exc:  # the old one, validly signed, is refused from now on
            renewal.apply(pipeline, first)
        assert exc.value.code == "manifest_serial_rollback"
        kinds = [(e.status, e.detail) for e in pipeline.audit.entries()]
        assert kinds[0][0] == "manifest_updated" and "serial 1 → 2" in kinds[0][1]
        assert kinds[1][0] == "manifest_refused"

        # back to minimal through the pipeline (the shape used with --host vps): serial 3
        back = subprocess.run(
            [*nsenter(rig.hub_ns), str(ROOT / "pipelines" / "reissue_manifest"), "--device-name", dev.name,
             "--profile", "minimal", "--yes", "--config", str(rig.workdir / "wg_hub.toml")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert back.returncode == 0, back.stderr
        assert json.loads(back.stdout)["serial"] == 3 and "serial 3 (previous 2)" in back.stderr
        assert "shell.exec.ls: removed since the previous manifest" in back.stderr
        got = in_netns(dev.netns, asyncio.run, poll())
        assert got is not None and got.new_serial == 3 and "shell.exec.ls" in got.removed
    finally:
        pipeline.close()
