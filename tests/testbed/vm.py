"""One real Debian 12 VM per test session (qemu TCG), shared by every test that asks.

    def test_x(vm):                       # meshagents.testbed.vm.machine.Vm, booted, sshd up
        vm.ssh("wg --version").stdout     # root in the guest (loopback forward + ControlMaster)
        vm.public_ip                      # 198.51.100.2 on the VM's segment
        vm.reboot()                       # same disk and address afterwards

    def test_y(vm, vm_segment_ns):        # a fresh namespace on the VM's segment
        ns, addr = vm_segment_ns()        # ("vmt<hex>", IPv4Interface("198.51.100.N/24"))
        subprocess.run([*nsenter(ns), "ping", "-c1", vm.public_ip])

The image is built once per recipe and cached (``./fn vm build``; .ci/run builds it
before the tests). The VM boots lazily, on the first test that asks for it (about a
minute of TCG), and ``down`` at the end of the session removes its qemu, forwards,
namespace and overlay disk. Tests that change the guest for good (a provisioned hub)
should say so in their module and leave it usable for the next.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from meshagents.testbed.vm import image, machine, ship
from tests.testbed.host import require_binary, require_root

NETNS_DIR = Path("/run/netns")


def require_vm_tools() -> None:
    require_root()
    require_binary("qemu-system-x86_64", "qemu-img", "nsenter", "ssh")
    if image.cached() is None:
        require_binary("debootstrap", "mkfs.ext4")


@pytest.fixture(scope="session")
def vm() -> Iterator[machine.Vm]:
    """The session's VM (booted on first use, shared, torn down at the end)."""
    require_vm_tools()
    base = Path(tempfile.mkdtemp(prefix="meshagents-vm-", dir="/var/tmp"))
    name = f"vm{secrets.token_hex(3)}"
    try:
        booted = machine.up(name, base=base, mem_mb=1024, smp=2, owner_pid=os.getpid())
        yield booted
    finally:
        machine.down(name, base=base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def vm_segment_ns(vm: machine.Vm) -> Iterator[Callable[[], tuple[str, IPv4Interface]]]:
    """A factory of namespaces on the VM's segment (deleted after the test)."""
    made: list[str] = []

    def make() -> tuple[str, IPv4Interface]:
        ns = f"vmt{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        made.append(ns)
        return ns, vm.attach(ns)

    yield make
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture(scope="session")
def vm_guest(vm: machine.Vm) -> ship.GuestPython:
    """The project's code and dependencies shipped into the session's VM (remote bundle)."""
    return ship.ship(vm)
