"""`meshagents enroll` on the hub rig: pre-checks stop before the token is spent, a failure after it
resumes with --resume, and `leave` has the hub revoke the device.

Devices are network namespaces with wireguard-go (this kernel has no WireGuard module) against
the real hub service; every prerequisite taken away is taken away for real: programs missing
from PATH, a full file system, a directory that cannot be written, UDP dropped by nftables.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from meshagents.enroll.precheck import EXIT_PRECHECK
from tests.testbed.hub_rig import OPERATOR_PORT, DeviceNs, HubRig, in_netns, nsenter

pytestmark = [pytest.mark.integration, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[3]
FN = str(ROOT / "fn")


def hidden(*programs: str) -> tuple[str, ...]:
    """A prefix that runs the command in a mount namespace where PROGRAMS are /dev/null (not executable):
    for it they are not installed, for everything else on this machine nothing changed."""
    mounts = "; ".join(f"mount --bind /dev/null {shutil.which(p)}" for p in programs)
    return ("unshare", "-m", "sh", "-c", f'{mounts} && exec "$0" "$@"')


def meshagents(rig: HubRig, dev: DeviceNs, *args: str, env: dict[str, str] | None = None,
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:  # fmt: skip
    argv = [*nsenter(dev.netns), *prefix, FN, *args]
    return subprocess.run(
        argv, cwd=ROOT, env=env or rig.env(dev.state), capture_output=True, text=True, timeout=120
    )


def enroll(
    rig: HubRig, dev: DeviceNs, token: str, *extra: str, **kw: object
) -> subprocess.CompletedProcess[str]:
    return meshagents(
        rig, dev, "enroll", "--token", token, "--hub", rig.public_url, "--interface", dev.interface,
        "--config-dir", str(dev.config_dir), "--no-systemd", *extra, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def error_codes(proc: subprocess.CompletedProcess[str]) -> list[str]:
    last = proc.stderr.strip().splitlines()[-1]
    return [p["code"] for p in json.loads(last).get("problems", [])]


def token_state(rig: HubRig, name: str) -> list[str]:
    return [
        row["kind"] for row in rig.operator("GET", "/api/log").json()["log"] if row.get("device_id") == name
    ]


def test_prechecks_stop_before_the_token_is_spent_then_the_same_token_enrolls(
    hub_rig: HubRig, tmp_path: Path
) -> None:
    dev = hub_rig.new_device()
    token = hub_rig.token(dev.name)
    # 1. no bubblewrap and no wireguard-go (and this kernel has no WireGuard module)
    proc = enroll(hub_rig, dev, token, prefix=hidden("bwrap", "wireguard-go"))
    assert proc.returncode == EXIT_PRECHECK, proc.stderr
    assert {"precheck_bwrap", "precheck_wireguard"} <= set(error_codes(proc))
    assert "[1/6] check this device" in proc.stderr and "[3/6]" not in proc.stderr
    assert "the token was not used" in proc.stderr.lower()
    # 2. the WireGuard config directory cannot be written
    proc = enroll(hub_rig, dev, token, "--config-dir", "/proc/enroll-no-such-dir")
    assert proc.returncode == EXIT_PRECHECK and "precheck_write" in error_codes(proc), proc.stderr
    # 3. the state directory's file system is full: a 1 MiB tmpfs in a mount namespace of its own
    small = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o size=1m tmpfs "{dev.state}" && exec "$0" "$@"']
    proc = enroll(hub_rig, dev, token, prefix=tuple(small))
    assert proc.returncode == EXIT_PRECHECK and "precheck_disk" in error_codes(proc), proc.stderr
    # nothing of it reached the hub or the device
    assert not hub_rig.device_has_interface(dev)
    assert "enrolled" not in token_state(hub_rig, dev.name)
    assert not (dev.state / "enroll" / "journal.json").exists()
    # fixed: the same token enrolls, and the whole of it was one process
    proc = enroll(hub_rig, dev, token)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["device_id"] == dev.name and hub_rig.mesh.ping(dev, "10.42.0.1")
    for n in range(1, 7):
        assert f"[{n}/6]" in proc.stderr
    assert out["mesh"]["elapsed_ms"] >= 0 and out["service"]["kind"] == "none"  # --no-systemd


def test_a_failure_after_the_token_is_spent_is_recorded_and_resumed(hub_rig: HubRig) -> None:
    dev = hub_rig.new_device()
    token = hub_rig.token(dev.name)
    # the handshake cannot happen: every UDP packet out of the device is dropped
    nft = "add table inet encl; add chain inet encl out { type filter hook output priority 0; }; " \
          "add rule inet encl out meta l4proto udp drop"  # fmt: skip
    hub_rig.mesh.run(dev.netns, ["nft", nft], check=True)
    proc = enroll(hub_rig, dev, token)
    assert proc.returncode == 1 and "mesh_unreachable" in proc.stderr, proc.stderr
    assert "meshagents enroll --resume" in proc.stderr
    jr = json.loads((dev.state / "enroll" / "journal.json").read_text())
    assert jr["done"] == ["submit", "wireguard"] and jr["failed"]["step"] == "mesh"
    # a fresh enroll does not start over on top of it, and the token is spent
    again = enroll(hub_rig, dev, hub_rig.token(dev.name))
    assert again.returncode == 1 and "enroll_unfinished" in again.stderr
    hub_rig.mesh.run(dev.netns, ["nft", "delete table inet encl"], check=True)
    proc = meshagents(hub_rig, dev, "enroll", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr and "[3/6]" not in proc.stderr and "[5/6]" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["device_id"] == dev.name and hub_rig.mesh.ping(dev, "10.42.0.1")
    health = in_netns(dev.netns, httpx.get, f"http://10.42.0.1:{OPERATOR_PORT}/healthz", timeout=5)
    assert health.json()["listener"] == "operator"
    jr = json.loads((dev.state / "enroll" / "journal.json").read_text())
    assert jr["failed"] is None
    assert jr["done"] == ["submit", "wireguard", "mesh", "agent_config", "service", "ready"]
    # resuming a finished enrollment changes nothing
    assert meshagents(hub_rig, dev, "enroll", "--resume").returncode == 0


def test_leave_has_the_hub_revoke_the_device(hub_rig: HubRig) -> None:
    dev = hub_rig.new_device()
    proc = enroll(hub_rig, dev, hub_rig.token(dev.name))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # a leave request not signed by the device's key is refused
    bad = hub_rig.public(
        "POST", "/enroll/leave", ns=dev.netns,
        json={"type": "meshagents.leave.v1", "device_id": dev.name, "issued_at": 0, "nonce": "x",
              "signature": "A" * 86 + "=="},
    )  # fmt: skip
    assert bad.status_code == 401 and bad.json()["error"] == "leave_signature_invalid"
    proc = meshagents(hub_rig, dev, "leave")
    assert proc.returncode == 0, proc.stderr
    left = json.loads(proc.stdout)
    assert left["hub"]["left"] is True
    peers = {p["name"]: p for p in hub_rig.operator("GET", "/api/peers").json()["peers"]}
    assert dev.name not in peers or peers[dev.name].get("status") == "revoked"
    assert "device_left" in token_state(hub_rig, dev.name)
    assert not hub_rig.device_has_interface(dev)
    assert not (dev.config_dir / f"{dev.interface}.conf").exists()
    assert not Path(out["wg_private_key_file"]).exists()
    assert not (dev.state / "enroll" / "journal.json").exists()
    # the device's key is kept (its audit chain stays verifiable)
    assert any(dev.state.rglob("*device*"))
    assert shutil.which("nft")
