"""pipelines/provision_wg_hub in a fresh namespace: idempotent, and the service starts from what it wrote."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.testbed.hub_rig import ROOT, in_netns, nsenter
from tests.testbed.mesh import require_mesh_tools

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def netns() -> Iterator[str]:
    require_mesh_tools()
    name = f"mp{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run([*nsenter(name), "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run([*nsenter(name), "ip", "link", "del", f"w{name}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_provision_twice_then_serve(netns: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = {**os.environ, "FN_STATE_DIR": str(state)}
    env.pop("FN_HOST", None)
    iface, cfg_dir, hub_cfg = f"w{netns}", tmp_path / "wg", tmp_path / "wg_hub.toml"
    argv = [
        *nsenter(netns), str(ROOT / "pipelines" / "provision_wg_hub"), "--interface", iface,
        "--config-dir", str(cfg_dir), "--hub-config", str(hub_cfg), "--public-host", "127.0.0.1",
        "--endpoint", "198.19.250.1", "--approver", "@op:hub.test",
    ]  # fmt: skip
    for _ in range(2):
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert "no systemd here" in proc.stderr or "service meshagents-wg_hub running" in proc.stderr
    log = subprocess.run(
        ["git", "-C", str(cfg_dir), "log", "--oneline"], capture_output=True, text=True
    ).stdout
    assert log.count("wg_hub_setup") == 1  # the second run changed nothing
    assert (state / "keys" / "operator" / "ed25519").exists() and (
        state / "keys" / "controller" / "ed25519"
    ).exists()
    text = hub_cfg.read_text()
    assert 'public_host = "127.0.0.1"' in text and "@op:hub.test" in text

    hub = subprocess.Popen(
        [
            *nsenter(netns),
            sys.executable,
            "-m",
            "meshagents.apps.wg_hub",
            "--config",
            str(hub_cfg),
            "--public-port",
            "8444",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ok = False
        for _ in range(100):
            try:
                ok = in_netns(netns, httpx.get, "http://10.42.0.1:8000/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.1)
            if ok or hub.poll() is not None:
                break
        assert ok, hub.stderr.read().decode() if hub.stderr and hub.poll() is not None else "no answer"
        assert (
            in_netns(netns, httpx.get, "http://127.0.0.1:8444/healthz", timeout=1).json()["listener"]
            == "public"
        )
    finally:
        hub.terminate()
        hub.wait(10)
    dry = subprocess.run([*argv, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and "would run: fn_run wg_hub_setup" in dry.stderr
