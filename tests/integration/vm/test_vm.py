"""The session VM itself: a real Debian 12 guest with systemd, sshd, kernel WireGuard,
an address on its own segment that test namespaces reach, and a reboot that keeps it all."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from ipaddress import IPv4Interface

import pytest

from meshagents.testbed.vm.machine import Vm

# the first test that asks boots the VM (a minute or two under TCG); reboot takes as long
pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.vm, pytest.mark.timeout(900)]


def _in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True,
                          timeout=60, check=False)


def test_guest_is_debian_12_with_systemd_and_the_wireguard_module(vm: Vm) -> None:
    out = vm.ssh("cat /etc/debian_version; systemctl is-system-running --wait; "
                 "modprobe wireguard && lsmod | grep -c '^wireguard'").stdout.split()
    assert out[0].startswith("12.")
    assert out[1] in ("running", "degraded")
    assert out[2] == "1"


def test_guest_has_the_hub_packages_preinstalled(vm: Vm) -> None:
    out = vm.ssh("for p in postgresql caddy bubblewrap nftables wireguard-tools python3-venv sudo; do "
                 "dpkg-query -W -f='${Status}\\n' $p; done").stdout.splitlines()
    assert out == ["install ok installed"] * 7


def test_a_namespace_on_the_segment_reaches_the_vm(
    vm: Vm, vm_segment_ns: Callable[[], tuple[str, IPv4Interface]]
) -> None:
    ns, addr = vm_segment_ns()
    assert _in_ns(ns, "ping", "-c1", "-W5", vm.public_ip).returncode == 0
    # ssh over the public address, as an operator on the internet would
    proc = _in_ns(ns, *vm.ssh_argv("hostname", via_segment=True))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "vps"
    # and the guest sees the namespace's address as the client's
    seen = vm.ssh(f"ping -c1 -W5 {addr.ip} >/dev/null && echo ok").stdout.strip()
    assert seen == "ok"


def test_two_namespaces_on_the_segment_reach_each_other(
    vm: Vm, vm_segment_ns: Callable[[], tuple[str, IPv4Interface]]
) -> None:
    a, _ = vm_segment_ns()
    _b, b_addr = vm_segment_ns()
    assert _in_ns(a, "ping", "-c1", "-W5", str(b_addr.ip)).returncode == 0


def test_reboot_keeps_disk_and_address(vm: Vm) -> None:
    marker = vm.ssh("head -c8 /dev/urandom | od -An -tx1 | tr -d ' \\n' | tee /root/marker; sync").stdout
    before = vm.boot_id()
    vm.reboot()
    assert vm.boot_id() != before
    assert vm.ssh("cat /root/marker").stdout == marker
    assert vm.public_ip in vm.ssh("ip -4 -o addr show dev eth0").stdout
