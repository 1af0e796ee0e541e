"""NOT YET PASSING, so not collected (the file name is not test_*.py): issue 18 stays open.
Last run: the installed agent on the VM never answered its first command ('no session found'
decrypting). Run it by name: ./fn test tests/e2e/wip_vm_device.py -x -s

A Debian 12 VM as a device: install.sh from the hub, enroll, reboot, the agent is back and answers;
``agent upgrade`` keeps the chain; ``leave`` revokes.

Real parts only: the rig (Synapse, wg_hub, the bot) in namespaces, and a Debian 12 VM under
qemu (kernel WireGuard, systemd as PID 1, bubblewrap) whose segment the hub's namespace is
attached to. The VM has no internet: it installs from the hub's ``/install`` bundle (the
project's wheel plus its [agent] dependencies for manylinux x86_64, CPython 3.11), checked
against the token's bundle_sha256 by install.sh. The test's one piece of topology is a route
in the VM to the rig's underlay (the hub's public address) through the hub's address on the
segment, made persistent by a small unit so it survives the reboot, as a VPS's route would.

The VM is the session's shared one: this module leaves it with meshagents installed in
/opt/meshagents and the device enrolled, then left (no unit, no interface, no config).
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshagents.apps.wg_hub.install_bundle import build_bundle
from meshagents.testbed.rig import Rig
from meshagents.testbed.rig.names import HUB_UNDERLAY
from meshagents.testbed.vm.machine import Vm
from tests.e2e.conftest import require_rig_tools
from tests.testbed.wheel import build_wheel

pytestmark = [pytest.mark.e2e, pytest.mark.vm]

DEVICE = "vm-dev"
PLATFORM = "manylinux_2_28_x86_64"  # Debian 12: glibc 2.36, CPython 3.11


def sh(vm: Vm, cmd: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = vm.ssh(cmd, check=False, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(
            f"VM: {cmd!r} exited {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        )
    return res


@pytest.fixture(scope="module")
def vrig(vm: Vm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Vm, dict[str, Any]]]:
    require_rig_tools()
    with Rig.up(devices=(), docker=False) as rig:
        hub_on_segment = vm.attach(rig.hub_netns)
        route = (
            "[Unit]\nDescription=route to the test hub's underlay\nAfter=network.target\n"
            "Before=wg-quick@wg0.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            f"ExecStart=/sbin/ip route replace 198.19.0.0/24 via {hub_on_segment.ip}\n"
            "[Install]\nWantedBy=multi-user.target\n"
        )
        sh(
            vm,
            f"printf %s {shlex.quote(route)} > /etc/systemd/system/test-hub-route.service"
            " && systemctl daemon-reload && systemctl enable --now test-hub-route.service",
        )
        wheel = build_wheel(tmp_path_factory.mktemp("dist"))
        bundle = build_bundle(wheel, rig.hub_state / "wg_hub" / "install", PLATFORM, "3.11")
        r = httpx.post(
            rig.hub_api_url + "/api/tokens",
            headers=rig._bearer(),
            timeout=30,
            json={"device_name": DEVICE, "profile": "demo", "ttl_s": 1800, "bundle_sha256": bundle.sha256},
        )
        assert r.status_code == 200, r.text
        yield (
            rig,
            vm,
            {"token": r.json()["token"], "install_command": r.json()["install_command"], "wheel": wheel},
        )


async def ask(rig: Rig, command: str, timeout: float = 180) -> str:
    op = rig.operator_client(f"vm-{secrets.token_hex(2)}")
    await op.start()
    try:
        reply = await op.command(DEVICE, command, timeout=timeout)
    finally:
        await op.stop()
    return str(reply.body)


def chain_entries(vm: Vm) -> int:
    res = sh(
        vm,
        "FN_STATE_DIR=/var/lib/meshagents /opt/meshagents/venv/bin/meshagents run"
        f" device_audit_verify_chain --device {DEVICE} --json",
    )
    return int(json.loads(res.stdout)["devices"][DEVICE]["entries"])


@pytest.mark.timeout(3000)
async def test_debian_vm_installs_enrolls_survives_reboot_upgrades_and_leaves(
    vrig: tuple[Rig, Vm, dict[str, Any]],
) -> None:
    rig, vm, t = vrig
    # 1. the operator's line: install.sh fetched from the hub, checked, run with the token
    line = str(t["install_command"])
    assert f"http://{HUB_UNDERLAY}:" in line and "/install/install.sh" in line
    out = sh(vm, f"cd /root && {line} -- --service system", timeout=1500)
    print(out.stderr[-4000:])  # the [n/m] progress with its times, for the docs
    enrolled = json.loads(out.stdout[out.stdout.index("{") :])  # the enroll command's JSON closes stdout
    assert enrolled["device_id"] == DEVICE and enrolled["service"]["kind"] == "system", out.stderr[-3000:]
    assert "[1/6] check this device" in out.stderr and "the device's room" in out.stderr
    # the agent runs as the meshagents user, the tunnel is root's wg-quick@wg0
    assert sh(vm, "systemctl is-active meshagents-agent.service wg-quick@wg0.service").stdout.split() == [
        "active",
        "active",
    ]
    user = sh(vm, "ps -o user= -p $(systemctl show -p MainPID --value meshagents-agent.service)")
    assert user.stdout.strip() == "meshagents"
    assert sh(vm, "stat -c %U /var/lib/meshagents").stdout.strip() == "meshagents"
    # the bot learns the device from its hub-signed manifest, as for the rig's own devices
    manifest = sh(vm, f"cat {enrolled['manifest_file']}").stdout
    (rig.manifests_dir / f"{DEVICE}.json").write_text(manifest)
    rig.restart_bot()
    # /tmp: the demo profile's prefix — the host's own /tmp, since the unit has no PrivateTmp
    try:
        body = await ask(rig, "!exec ls /tmp", timeout=300)
    finally:  # what the agent said, in the test's output either way
        print(sh(vm, "journalctl -u meshagents-agent.service --no-pager -n 60", check=False).stdout[-6000:])
    assert "]: ok" in body.split("\n", 1)[0], body

    # 2. reboot: the interface and the agent come back by themselves, and it answers
    before = vm.boot_id()
    vm.reboot()
    assert vm.boot_id() != before
    assert sh(vm, "systemctl is-enabled meshagents-agent.service wg-quick@wg0.service").stdout.split() == [
        "enabled",
        "enabled",
    ]
    body = await ask(rig, "!exec ls /tmp", timeout=300)
    assert "]: ok" in body.split("\n", 1)[0], body
    entries = chain_entries(vm)
    assert entries >= 2

    # 3. agent upgrade: the wheel installed again in place; keys, manifest, chain, nonces kept
    sh(vm, "mkdir -p /var/tmp/up")
    subprocess.run(
        vm.ssh_argv(f"cat > /var/tmp/up/{t['wheel'].name}"),
        input=Path(t["wheel"]).read_bytes(),
        check=True,
        timeout=120,
    )
    up = sh(
        vm,
        "FN_STATE_DIR=/var/lib/meshagents /opt/meshagents/venv/bin/meshagents agent upgrade"
        f" /var/tmp/up/{t['wheel'].name} --pip-arg=--no-deps --pip-arg=--force-reinstall",
    )
    upgraded = json.loads(up.stdout)
    assert upgraded["restarted"] is True and upgraded["chain_before"]["entries"] == entries
    body = await ask(rig, "!exec ls /tmp", timeout=300)
    assert "]: ok" in body.split("\n", 1)[0], body
    assert chain_entries(vm) > entries  # the same chain, grown by the command after the upgrade

    # 4. leave: the hub revokes the device; unit, config and interface gone from the VM
    left = json.loads(
        sh(vm, "FN_STATE_DIR=/var/lib/meshagents /opt/meshagents/venv/bin/meshagents leave").stdout
    )
    assert left["hub"]["left"] is True
    peers = httpx.get(rig.hub_api_url + "/api/peers", headers=rig._bearer(), timeout=30).json()["peers"]
    mine = [p for p in peers if p["name"] == DEVICE]
    assert not mine or mine[0].get("status") == "revoked", mine
    assert sh(vm, "ip link show wg0", check=False).returncode != 0
    assert sh(vm, "test -e /etc/systemd/system/meshagents-agent.service", check=False).returncode != 0
    assert sh(vm, "test -e /etc/wireguard/wg0.conf", check=False).returncode != 0
    assert sh(vm, "systemctl is-enabled wg-quick@wg0.service", check=False).stdout.strip() != "enabled"
