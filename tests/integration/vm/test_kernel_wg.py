"""The kernel WireGuard backend against a real kernel module (Debian 12's 6.1, in the VM),
beside wireguard-go in the same guest and the same test: the same steps, the same answers.

The steps run inside the guest (``meshagents/testbed/vm/guest_wg.py``, shipped with the
remote bundle) in namespaces of their own, so the shared VM is left as it was.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshagents.testbed.vm.ship import GuestPython

# the first test that asks boots the VM and ships the bundle (minutes under TCG)
pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.vm, pytest.mark.timeout(1200)]

BACKENDS = ("kernel", "userspace")


def _run(guest: GuestPython, *argv: str, timeout: float = 600) -> dict[str, Any]:
    script = ("import sys\nfrom meshagents.testbed.vm.guest_wg import main\n"
              f"sys.exit(main({list(argv)!r}))\n")  # fmt: skip
    proc = guest.python(script, timeout=timeout)
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_auto_picks_the_kernel_module_in_the_guest(vm_guest: GuestPython) -> None:
    proc = vm_guest.python("from meshagents.wg.backend import kernel_available, open_backend\n"
                           "print(kernel_available(), open_backend('wgauto0').name)\n")  # fmt: skip
    assert proc.stdout.split() == ["True", "kernel"]


def test_backend_steps_kernel_beside_wireguard_go(vm_guest: GuestPython) -> None:
    seen = {b: _run(vm_guest, "backend", b) for b in BACKENDS}
    for name, out in seen.items():
        keys = out["keys"]
        assert out["backend"] == name
        assert out["created"] is True and out["created_again"] is False
        assert out["public_key_ok"] is True and out["listen_port"] == 51820
        peers = out["after_add"]
        assert set(peers) == set(keys)
        assert peers[keys[0]] == {"allowed_ips": ["10.77.0.10/32"], "endpoint": "198.51.100.50:51820",
                                  "keepalive": 25, "psk": False}  # fmt: skip
        assert peers[keys[1]]["allowed_ips"] == ["10.77.0.11/32", "10.78.0.0/24"]
        assert peers[keys[1]]["psk"] is True
        assert out["after_update"] == ["10.77.0.99/32"], "allowed IPs are replaced, not added to"
        assert out["after_remove"] == sorted([keys[0], keys[2]])
        assert out["after_replace"] == [keys[0]]
        assert out["deleted"] is True and out["exists_after_delete"] is False
    assert seen["kernel"]["decoders_agree"] is True, "raw decoder and pyroute2 disagree on a real answer"
    # the two backends report the same device the same way
    strip = ("keys", "backend", "decoders_agree", "after_add", "after_remove", "after_replace")
    assert {k: v for k, v in seen["kernel"].items() if k not in strip} == {
        k: v for k, v in seen["userspace"].items() if k not in strip
    }


def test_hub_functions_add_revoke_status_on_both_backends(vm_guest: GuestPython) -> None:
    for name in BACKENDS:
        out = _run(vm_guest, "functions", name)
        assert out["backend"] == name
        assert out["setup_again_changed"] == []
        assert out["status_count"] == 2 and out["status_names"] == ["dev-a", "dev-b"]
        assert out["after_revoke_names"] == ["dev-b"]
        assert out["readd_revoked"] != "accepted", "a revoked key must never come back"
        assert out["final_count"] == 0 and out["conf_peers"] == 0 and out["wg_show_peers"] == []


def test_wg_status_at_1000_peers_on_both_backends(vm_guest: GuestPython) -> None:
    for name in BACKENDS:
        out = _run(vm_guest, "status", name, "1000", "3", timeout=900)
        assert out["backend"] == name
        assert out["peers"] == 1000
