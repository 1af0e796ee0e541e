"""provision_wg_hub --host on a real Debian 12 VM: the whole hub as units, idempotent,
surviving reboot, backed up and restored, upgraded (and rolled back when unhealthy).

Every test leaves the hub healthy and provisioned as the fixture made it, so they pass
in any order (pytest-randomly); the VM is booted and provisioned once per module.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.hubhost import ROOT, VmDevice, VmHub, ask, enroll_device, prefetch, remove_device

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.vm, pytest.mark.timeout(3600)]

APP_UNITS = ("meshagents-wg_hub", "meshagents-agents_and_robots", "meshagents-agents_dashboard")
ALL_UNITS = (*APP_UNITS, "meshagents-synapse", "meshagents-firewall", "meshagents-wg-wg0", "caddy")


@pytest.fixture(scope="module")
def vm_device(vm_hub: VmHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmDevice]:
    """One device enrolled on the hub for the module (its namespace, agent and state removed after)."""
    dev = enroll_device(vm_hub, secrets.token_hex(3), tmp_path_factory.mktemp("vmdev"))
    try:
        yield dev
    finally:
        remove_device(dev)


def answered_ok(reply: dict[str, Any]) -> bool:
    return str(reply["body"]).split("\n", 1)[0].endswith("]: ok")


def chain_entries(dev: VmDevice) -> int:
    device_id = str(dev.enrolled["device_id"])
    argv = [str(ROOT / "fn"), "run", "device_audit_verify_chain", "--device", device_id, "--json"]
    proc = subprocess.run(argv, cwd=ROOT, env={**hub_free_env(), "FN_STATE_DIR": str(dev.state)},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)["devices"][device_id]
    assert out.get("ok", True), out
    return int(out["entries"])


def hub_free_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("FN_HOST", "FN_STATE_DIR")}


def handshakes(hub: VmHub) -> dict[str, int]:
    out = hub.vm.ssh("wg show wg0 latest-handshakes").stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def assert_healthy(hub: VmHub) -> dict[str, Any]:
    proc = hub.fn("hub", "status", "--host", hub.alias)
    status: dict[str, Any] = json.loads(proc.stdout)
    assert proc.returncode == 0 and status["ok"], proc.stdout + proc.stderr[-2000:]
    return status


def test_provisioned_from_nothing_runs_as_units_with_least_privilege(vm_hub: VmHub) -> None:
    hub = vm_hub
    assert "[1/14] Debian packages" in hub.first_stderr and "[14/14] services" in hub.first_stderr
    status = assert_healthy(hub)
    assert status["mesh"]["backend"] == "kernel"
    assert status["certificate"]["ok"] and "Caddy Local Authority" in status["certificate"]["issuer"]
    units = hub.units()
    for name in ALL_UNITS:
        assert units[name]["ActiveState"] == "active", (name, units[name])
    for name in APP_UNITS:
        assert units[name]["User"] == "meshagents"
    assert units["meshagents-synapse"]["User"] == "meshagents-synapse"
    pid = units["meshagents-wg_hub"]["MainPID"]
    caps = hub.vm.ssh(f"grep -E '^(Uid|CapEff|CapAmb)' /proc/{pid}/status").stdout
    assert "CapEff:\t0000000000001000" in caps and "CapAmb:\t0000000000001000" in caps, caps  # CAP_NET_ADMIN
    # the operator key never left this machine; the hub checks manifests against its public half
    assert hub.vm.ssh("test -e /var/lib/meshagents/keys/operator/ed25519", check=False).returncode != 0
    assert (hub.state / "keys" / "operator" / "ed25519").exists()
    creds = json.loads(next((hub.state / "operator").glob("matrix-*.json")).read_text())
    assert creds["user_id"] == f"@operator:{hub.domain}" and creds["homeserver"] == f"https://{hub.domain}"
    conf = hub.vm.ssh("cat /etc/meshagents/wg_hub.toml").stdout
    assert f'approvers = ["@operator:{hub.domain}"]' in conf and 'manifest_signing = "offline"' in conf
    pg = hub.vm.ssh("runuser -u postgres -- psql -tAc \"SELECT count(*) FROM pg_database WHERE "
                    "datname='meshagents_synapse'\"").stdout.strip()  # fmt: skip
    assert pg == "1"


def test_firewall_public_surface(vm_hub: VmHub) -> None:
    rules = vm_hub.vm.ssh("nft list table inet meshagents_host").stdout
    assert (
        "policy drop" in rules
        and "udp dport 51820 accept" in rules
        and "tcp dport { 22, 443 } accept" in rules
    )
    # from the internet segment: 443 answers (Caddy), the operator API and Synapse's port do not
    probe = (
        "import socket,sys\n"
        "for p in (443, 8000, 8008, 8080, 8443):\n"
        " s=socket.socket(); s.settimeout(3)\n"
        " try: s.connect((sys.argv[1], p)); print(p, 'open')\n"
        " except OSError as e: print(p, 'closed')\n"
    )
    import subprocess

    out = subprocess.run(["ip", "netns", "exec", vm_hub.ns, "python3", "-c", probe, vm_hub.vm.public_ip],
                         capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    assert "443 open" in out and "8000 closed" in out and "8008 closed" in out and "8443 closed" in out, out


def test_element_reaches_synapse_and_enroll_through_caddy_tls(vm_hub: VmHub) -> None:
    code, body = vm_hub.https("/.well-known/matrix/client")
    assert code == 200 and json.loads(body) == {"m.homeserver": {"base_url": f"https://{vm_hub.domain}"}}
    code, body = vm_hub.https("/_matrix/client/versions")
    assert code == 200 and "versions" in json.loads(body)
    code, body = vm_hub.https("/healthz")
    assert code == 200 and json.loads(body)["listener"] == "public"
    code, _ = vm_hub.https("/api/peers")  # the operator API is not behind Caddy
    assert code == 404


def test_device_enrolls_over_the_public_address_and_is_commanded_through_caddy_tls(
    vm_hub: VmHub, vm_device: VmDevice
) -> None:
    hub, dev = vm_hub, vm_device
    assert dev.enrolled["device_id"] and dev.enrolled["address"].startswith("10.42.0."), dev.enrolled
    assert dev.name in dev.enrolled["signed_by_operator"]  # sign_pending_manifests --host signed it here
    # the device came in over the VM's public address: the hub's peer has the device's segment
    # address as its endpoint, and the enrollment went to https://<domain>/enroll (Caddy)
    seg = subprocess.run(["ip", "-n", dev.ns, "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    ends = hub.vm.ssh("wg show wg0 endpoints").stdout
    dev_ip = next(w.split("/")[0] for w in seg.split() if w.startswith("198.51.100."))
    assert f"{dev_ip}:" in ends, (seg, ends)
    # the hub's public listener is on the VM's loopback (127.0.0.1:8443): Caddy's 443 is the only way in
    listen = hub.vm.ssh("ss -Hltn 'sport = :8443'").stdout
    assert "127.0.0.1:8443" in listen and "0.0.0.0:8443" not in listen, listen
    assert "/enroll" in hub.vm.ssh("cat /etc/caddy/Caddyfile").stdout
    reply = ask(hub, dev.name, "!exec uptime -p")
    assert answered_ok(reply) and "up" in reply["body"], reply
    device_user = json.loads(Path(dev.enrolled["matrix_credentials"]).read_text())["user_id"]
    assert reply["sender"] == device_user, reply
    assert handshakes(hub)


def test_rerun_changes_nothing(vm_hub: VmHub) -> None:
    hub = vm_hub
    before_units, before_files = hub.units(), hub.files()
    proc = hub.provision()
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (
        "changed:" not in proc.stderr and "restarted " not in proc.stderr and "started " not in proc.stderr
    ), proc.stderr
    # every step that reports its changes says so (the other four print none: the Synapse wheels
    # gathered on this machine, the operator key, the controller key, your operator configuration)
    assert proc.stderr.count("    unchanged") == 10, proc.stderr
    after_units, after_files = hub.units(), hub.files()
    for name in ALL_UNITS:
        for key in ("NRestarts", "ActiveEnterTimestampMonotonic", "MainPID"):
            assert before_units[name][key] == after_units[name][key], (name, key)
    assert before_files == after_files


def test_hand_edits_survive_and_a_changed_flag_changes_only_that(vm_hub: VmHub) -> None:
    hub = vm_hub
    # a top-level key, so after the header comment: the file ends in the [matrix] table, where an
    # appended line would be a key of that table (the hub refuses it: config_invalid)
    hub.vm.ssh("sed -i '1a # kept by hand\\nrefuse_window_s = 900' /etc/meshagents/wg_hub.toml")
    try:
        proc = hub.provision()
        assert proc.returncode == 0, proc.stderr[-4000:]
        conf = hub.vm.ssh("cat /etc/meshagents/wg_hub.toml").stdout
        assert "# kept by hand" in conf and "refuse_window_s = 900" in conf
        assert "restarted meshagents-wg_hub.service" in proc.stderr  # it reads the edit
        assert "restarted meshagents-agents_and_robots" not in proc.stderr
        # a changed flag: a second approver — only the hub's config and the hub change
        proc = hub.provision("--approver", f"@operator:{hub.domain}", "--approver", f"@other:{hub.domain}")
        assert proc.returncode == 0, proc.stderr[-4000:]
        changed = [line for line in proc.stderr.splitlines() if line.strip().startswith("changed:")]
        assert changed == ["    changed: approvers"], proc.stderr
        assert "@other:" in hub.vm.ssh("cat /etc/meshagents/wg_hub.toml").stdout
    finally:
        hub.vm.ssh("sed -i '/# kept by hand/d; /refuse_window_s = 900/d' /etc/meshagents/wg_hub.toml")
        proc = hub.provision()
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert_healthy(hub)


def test_reboot_brings_everything_back_by_itself(vm_hub: VmHub, vm_device: VmDevice) -> None:
    hub, dev = vm_hub, vm_device
    status = assert_healthy(hub)
    peers_before = status["mesh"]["peers"]
    assert answered_ok(ask(hub, dev.name, "!exec uptime -p"))
    entries_before = chain_entries(dev)
    rooms_sql = "SELECT count(*) FROM rooms"
    rooms = hub.vm.ssh(f"runuser -u postgres -- psql -d meshagents_synapse -tAc '{rooms_sql}'").stdout.strip()
    boot_before = hub.vm.boot_id()
    t_cmd = time.monotonic()
    took = hub.vm.reboot()
    assert hub.vm.boot_id() != boot_before
    # nothing started by hand: the first answered command proves the whole chain came back by
    # itself (kernel WireGuard from its unit, firewall, PostgreSQL, Synapse, Caddy, hub, bot)
    # and the device re-handshook on its own
    reply = ask(hub, dev.name, "!exec uptime -p", timeout=600, store="after-reboot")
    answered = time.monotonic() - t_cmd
    assert answered_ok(reply), reply
    print(f"\nreboot: sshd after {took:.1f} s, first answered command {answered:.1f} s after the reboot "
          "command", flush=True)  # fmt: skip
    status = assert_healthy(hub)
    assert status["mesh"]["peers"] == peers_before
    assert all(u["restarts"] == 0 for u in status["units"].values()), status["units"]
    units = hub.units()
    for name in ALL_UNITS:
        assert units[name]["ActiveState"] == "active", (name, units[name])
    dev_key = subprocess.run(["wg", "show", dev.interface, "public-key"], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    assert handshakes(hub)[dev_key] > 0  # the device re-handshook with the rebooted hub
    # nothing lost: the device's audit chain verifies and grew by the command; the rooms are all there
    assert chain_entries(dev) > entries_before
    after = hub.vm.ssh(f"runuser -u postgres -- psql -d meshagents_synapse -tAc '{rooms_sql}'").stdout.strip()
    assert after == rooms


def test_backup_then_restore_keeps_peers_keys_and_rooms(vm_hub: VmHub, tmp_path: Path) -> None:
    hub = vm_hub
    key = hub.vm.ssh("wg genkey | wg pubkey").stdout.strip()
    hub.vm.ssh(f"/opt/meshagents/bin/fn run wg_peer_add --name bk-{secrets.token_hex(3)} "
               f"--public-key {key}")  # fmt: skip
    api_token = hub.vm.ssh("cat /var/lib/meshagents/keys/wg_hub/api_token | sha256sum").stdout
    rooms_sql = "SELECT count(*) FROM room_aliases"
    rooms = hub.vm.ssh(f"runuser -u postgres -- psql -d meshagents_synapse -tAc '{rooms_sql}'").stdout.strip()
    proc = hub.fn("hub", "backup", "--host", hub.alias, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = json.loads(proc.stdout)
    archive = Path(made["local"])
    assert archive.stat().st_mode & 0o077 == 0 and made["database"] is True
    # lose the peer, the key and the rooms' aliases, then restore
    hub.vm.ssh(f"wg set wg0 peer {key} remove; rm /var/lib/meshagents/keys/wg_hub/api_token; "
               "runuser -u postgres -- psql -d meshagents_synapse -c 'DELETE FROM room_aliases'")  # fmt: skip
    proc = hub.fn("hub", "restore", "--host", hub.alias, "--archive", str(archive))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert key in hub.vm.ssh("wg show wg0 peers").stdout
    assert hub.vm.ssh("cat /var/lib/meshagents/keys/wg_hub/api_token | sha256sum").stdout == api_token
    assert (
        hub.vm.ssh(f"runuser -u postgres -- psql -d meshagents_synapse -tAc '{rooms_sql}'").stdout.strip()
        == rooms
    )
    assert_healthy(hub)


def _copy_checkout(dst: Path, marker: str, *, break_hub: bool = False) -> Path:
    shutil.copytree(ROOT / "meshagents", dst / "meshagents", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "fn"):
        shutil.copy2(ROOT / name, dst / name)
    (dst / ".venv").symlink_to(ROOT / ".venv")
    (dst / "meshagents" / "RELEASE").write_text(marker + "\n")
    if break_hub:
        main = dst / "meshagents" / "apps" / "wg_hub" / "__main__.py"
        main.write_text("raise SystemExit('a broken release')\n" + main.read_text())
    return dst


def test_upgrade_switches_release_and_rolls_back_when_unhealthy(vm_hub: VmHub, tmp_path: Path) -> None:
    hub = vm_hub
    old = assert_healthy(hub)["release"]
    good = _copy_checkout(tmp_path / "good", f"upgrade {time.time()}")
    bad = _copy_checkout(tmp_path / "bad", f"broken {time.time()}", break_hub=True)
    for root in (good, bad):  # built in the root namespace: its wheels come from the package index
        prefetch(hub.vm, root)
    proc = hub.fn("hub", "upgrade", "--host", hub.alias, root=good)
    assert proc.returncode == 0, proc.stderr[-3000:]
    up = json.loads(proc.stdout)
    assert up["previous"] == old and up["release"] != old
    assert assert_healthy(hub)["release"] == up["release"]
    proc = hub.fn("hub", "upgrade", "--host", hub.alias, "--health-timeout-s", "30", root=bad)
    assert proc.returncode != 0 and "upgrade_rolled_back" in proc.stderr, proc.stderr[-3000:]
    assert assert_healthy(hub)["release"] == up["release"]
