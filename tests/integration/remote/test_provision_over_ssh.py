"""pipelines/provision_wg_hub --host: a hub brought up over SSH in the "VPS" namespace,
then a device namespace enrolls against it; the operator key never leaves this side."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.host import ROOT, require_binary, require_root
from tests.testbed.sshd import SshHost

pytestmark = [pytest.mark.integration, pytest.mark.root]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def vps_and_device(tmp_path: Path) -> Iterator[tuple[SshHost, str, str, Path]]:
    """The VPS (sshd in a namespace) and a device namespace wired to it by a veth."""
    require_root()
    require_binary("sshd", "wireguard-go", "wg", "nsenter", "ip", "ping")
    sfx = secrets.token_hex(3)
    dev_ns, va, vb = f"fndev-{sfx}", f"vd{sfx}a", f"vd{sfx}b"
    third = secrets.randbelow(256)
    hub_under, dev_under = f"198.19.{third}.1", f"198.19.{third}.2"
    with SshHost.start(state_dir=tmp_path / "vps-state") as vps:
        try:
            sh("ip", "netns", "add", dev_ns)
            sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
            sh("ip", "link", "set", va, "netns", vps.netns)
            sh("ip", "link", "set", vb, "netns", dev_ns)
            sh("ip", "-n", vps.netns, "addr", "add", f"{hub_under}/30", "dev", va)
            sh("ip", "-n", vps.netns, "link", "set", va, "up")
            sh("ip", "-n", dev_ns, "addr", "add", f"{dev_under}/30", "dev", vb)
            sh("ip", "-n", dev_ns, "link", "set", vb, "up")
            sh("ip", "-n", dev_ns, "link", "set", "lo", "up")
            yield vps, dev_ns, hub_under, tmp_path
        finally:
            subprocess.run(["ip", "netns", "del", dev_ns], check=False, capture_output=True)


def test_provision_over_ssh_then_enroll(vps_and_device: tuple[SshHost, str, str, Path]) -> None:
    vps, dev_ns, hub_under, tmp = vps_and_device
    sfx = vps.suffix
    hub_if, dev_if = f"wgv{sfx}", f"wgd{sfx}"
    hub_cfg, hub_wg = tmp / "hub" / "wg_hub.toml", tmp / "hub" / "wg"
    env = dict(os.environ, FN_SSH_CONFIG=str(vps.config), FN_STATE_DIR=str(tmp / "operator-state"))
    env.pop("FN_CALLER", None)
    fn = str(ROOT / "fn")
    try:
        prov = subprocess.run(
            [str(ROOT / "pipelines" / "provision_wg_hub"), "--host", vps.alias,
             "--interface", hub_if, "--config-dir", str(hub_wg), "--endpoint", f"{hub_under}:51820",
             "--public-host", "0.0.0.0", "--hub-config", str(hub_cfg)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert prov.returncode == 0, prov.stderr
        # the operator key was made here; the hub only has its public half
        local_op = json.loads(subprocess.run([fn, "run", "operator_key_init"], env=env, capture_output=True,
                                             text=True, check=True).stdout)["public_key"]  # fmt: skip
        assert not (tmp / "vps-state" / "keys" / "operator").exists()
        assert f'operator_public_key = "{local_op}"' in hub_cfg.read_text()
        assert 'manifest_signing = "offline"' in hub_cfg.read_text()

        hub_status = subprocess.run(
            [fn, "run", "--host", vps.alias, "wg_status", "--interface", hub_if, "--config-dir", str(hub_wg)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        hub_pub = json.loads(hub_status.stdout)["public_key"]
        # provisioning recorded, on THIS machine, the controller key it made on the hub and the
        # approvers: the manifests the hub prepares are checked against that, not the hub's word
        controller = json.loads(subprocess.run(
            [fn, "run", "--host", vps.alias, "controller_key_init"], env=env, capture_output=True, text=True,
            check=True).stdout)["public_key"]  # fmt: skip
        op_cfg = tomllib.loads((tmp / "operator-state" / "operator" / "operator.toml").read_text())
        assert op_cfg == {
            "controllers": [controller],
            "approvers": tomllib.loads(hub_cfg.read_text())["approvers"],
        }
        token = json.loads(
            subprocess.run(
                [fn, "run", "enrollment_token_create", "--device-name", f"dev-{sfx}",
                 "--hub-endpoint", f"http://{hub_under}:8443", "--hub-public-key", hub_pub],
                env=env, capture_output=True, text=True, check=True,
            ).stdout
        )["token"]  # fmt: skip

        dev_env = dict(env, FN_STATE_DIR=str(tmp / "device-state"))
        device = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{dev_ns}", str(ROOT / "pipelines" / "enroll_device"),
             "--token", token, "--interface", dev_if, "--config-dir", str(tmp / "dev-wg"), "--no-systemd"],
            env=dev_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # the hub holds the manifest until the operator signs it here
        deadline = time.monotonic() + 120
        signed = False
        while time.monotonic() < deadline and device.poll() is None:
            res = subprocess.run(
                [str(ROOT / "pipelines" / "sign_pending_manifests"), "--host", vps.alias,
                 "--config", str(hub_cfg), "--yes"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
            if f"signed dev-{sfx}" in res.stderr:
                signed = True
                break
            time.sleep(0.5)
        out, err = device.communicate(timeout=180)
        assert signed, err
        assert device.returncode == 0, err
        enrolled = json.loads(out[out.index("{") :])
        assert enrolled["address"].startswith("10.42.0.")
        ping = subprocess.run(["nsenter", f"--net=/run/netns/{dev_ns}", "ping", "-c1", "-W2", "10.42.0.1"],
                              capture_output=True)  # fmt: skip
        assert ping.returncode == 0
    finally:
        # the device's wireguard-go holds its namespace alive: take the interface down first
        subprocess.run(["nsenter", f"--net=/run/netns/{dev_ns}", fn, "run", "wg_interface_down",
                        "--interface", dev_if, "--config-dir", str(tmp / "dev-wg")],
                       env=dict(env, FN_STATE_DIR=str(tmp / "device-state")), capture_output=True,
                       timeout=120)  # fmt: skip
        subprocess.run([fn, "run", "--host", vps.alias, "hub_service_stop", "--config", str(hub_cfg)],
                       env=env, capture_output=True, timeout=120)  # fmt: skip
        subprocess.run([fn, "run", "--host", vps.alias, "wg_interface_down", "--interface", hub_if,
                        "--config-dir", str(hub_wg)], env=env, capture_output=True, timeout=120)  # fmt: skip
