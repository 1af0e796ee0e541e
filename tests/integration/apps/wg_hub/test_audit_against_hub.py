"""``device_audit_verify_chain --against-hub`` on a real mesh: a device that rewrote its
history, both its files edited consistently and re-signed with its own key, passes the
local check and is caught against the copy the hub holds.

The device is enrolled by the real pipeline; its chain is written, sealed and shipped
by the agent's own ``Sealer`` and ``Shipper`` over the WireGuard mesh. The verifier runs
as ``./fn run`` in the hub's namespace (the operator API is on its loopback) with the
device's state directory and the hub's operator token in ``$MESHAGENTS_HUB_TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshagents.apps.device_agent.config import load
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.apps.device_agent.sealing import Sealer
from meshagents.apps.device_agent.shipping import Shipper
from meshagents.testbed.rig.config import agent_config
from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore, load_signing_key
from tests.testbed import tamper
from tests.testbed.hub_rig import OPERATOR_PORT, ROOT, DeviceNs, HubRig, in_netns, nsenter

pytestmark = [pytest.mark.integration, pytest.mark.root]


def enrolled(rig: HubRig) -> tuple[DeviceNs, dict[str, Any]]:
    dev = rig.new_device()
    proc = rig.enroll(dev, rig.token(dev.name))
    assert proc.returncode == 0, proc.stderr
    return dev, json.loads(proc.stdout)


def verify(rig: HubRig, dev: DeviceNs, *args: str) -> tuple[int, dict[str, Any]]:
    env = dict(
        os.environ, FN_STATE_DIR=str(dev.state), FN_KEYSTORE="file", MESHAGENTS_HUB_TOKEN=rig.api_token
    )
    res = subprocess.run(
        [*nsenter(rig.hub_ns), str(ROOT / "fn"), "run", "device_audit_verify_chain", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    text = res.stdout if res.returncode == 0 else res.stderr.strip().splitlines()[-1]
    return res.returncode, json.loads(text)


def test_against_hub_catches_what_local_files_cannot(
    hub_rig: HubRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, out = enrolled(hub_rig)
    monkeypatch.setenv("FN_STATE_DIR", str(dev.state))  # the agent's default chain place is its state dir
    conf = agent_config(
        device_name=dev.name, device_id=dev.name, manifest_path=str(out["manifest_file"]),
        operator_key=json.loads(Path(out["manifest_file"]).read_text())["operator_key"],
        matrix_user="@x:hub.test", matrix_password="unused", bot_user="@bot:hub.test",
    )  # fmt: skip
    conf.update(hub_url=f"http://10.42.0.1:{OPERATOR_PORT}", keys_dir=str(dev.state / "keys"))
    cfg_path = dev.state / "device_agent" / "config.json"
    cfg_path.parent.mkdir(mode=0o700)
    cfg_path.write_text(json.dumps(conf))
    config = load(cfg_path)
    assert config.audit_path == dev.state / "audit" / f"{dev.name}.sqlite"

    pipeline = Pipeline(config)
    try:
        audit = pipeline.audit
        key = lambda: load_signing_key(DEVICE_KEY, FileKeyStore(dev.state / "keys"))  # noqa: E731
        sealer = Sealer(config, audit, pipeline.manifest, key)
        for i in range(6):
            audit.append_intent(f"r{i}", "shell.exec.uptime", {"argv": ["uptime"]})
            audit.append_outcome(f"r{i}", "shell.exec.uptime", "ok")
        assert sealer.seal() is not None  # record at 12, its entry at 13

        async def ship() -> int:
            async with httpx.AsyncClient(timeout=10) as http:
                return await Shipper(config, audit, key).ship_once(http)

        assert in_netns(dev.netns, asyncio.run, ship()) == 13
    finally:
        pipeline.close()
    chain = config.audit_path

    rc, ok = verify(
        hub_rig, dev, "--device", dev.name, "--against-hub", "--hub-url", f"http://127.0.0.1:{OPERATOR_PORT}"
    )
    assert rc == 0, ok
    assert ok["devices"][dev.name]["hub_head_seq"] == 13

    # the device rewrites seq 3 and re-signs its checkpoint file with its own key
    tamper.edit_and_rehash(chain, 3, "nothing ran")
    tamper.resign_records(chain, key(), dev.name)
    assert verify(hub_rig, dev, "--device", dev.name)[0] == 0  # the local files alone agree
    hub = ("--against-hub", "--hub-url", f"http://127.0.0.1:{OPERATOR_PORT}")
    rc, err = verify(hub_rig, dev, "--device", dev.name, *hub)
    report = err["devices"][dev.name]
    assert rc == 1 and (report["problem"], report["first_bad_seq"]) == ("hub_mismatch", 3), err

    # or cuts the tail of both files and re-signs
    tamper.edit_and_rehash(chain, 3, "")  # back to what the hub holds
    tamper.cut_tail(chain, 9)
    tamper.resign_records(chain, key(), dev.name)
    assert verify(hub_rig, dev, "--device", dev.name)[0] == 0
    rc, err = verify(hub_rig, dev, "--device", dev.name, *hub)
    report = err["devices"][dev.name]
    assert rc == 1 and (report["problem"], report["first_bad_seq"]) == ("truncated", 10), err

    # a hub peer whose chain is not on this machine: --all --against-hub names it
    other, _ = enrolled(hub_rig)
    rc, err = verify(hub_rig, dev, "--all", *hub)
    assert rc == 1 and err["error"] == "audit_missing" and other.name in err["missing"], err
    assert dev.name not in err["missing"]
