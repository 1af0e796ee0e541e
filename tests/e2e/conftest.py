"""The whole rig for end-to-end tests: one per session, every part real.

    def test_x(rig: Rig) -> None:            # session-scoped (start ~20-60 s)
        rig.devices["home-wsl"], rig.hub_api_url, rig.api_token, rig.bot_api_url, ...

    async def test_y(rig: Rig) -> None:
        op = rig.operator_client("test_y")   # one Matrix device per store name
        await op.start()
        try:
            reply = await op.command("home-wsl", "!exec ls /tmp")
        finally:
            await op.stop()

See meshagents/testbed/rig/rig.py for the API (restart_agent, kill_agent, hub_interface_down/up,
fn(...), approvals through ``op.approve``). ``root_netns_snapshot`` gives the root
namespace's namespaces and IPv4 routes, for tests that prove nothing leaked into it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from meshagents.testbed.rig import Rig
from tests.testbed.host import require_binary, require_root

if TYPE_CHECKING:
    from tests.element.driver import ElementClient


@dataclass(frozen=True)
class RootSnapshot:
    netns: frozenset[str]
    routes: frozenset[str]


def root_netns_snapshot() -> RootSnapshot:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    return RootSnapshot(
        frozenset(line.split()[0] for line in ns.splitlines() if line.strip()),
        frozenset(line.strip() for line in routes.splitlines() if line.strip()),
    )


def require_rig_tools() -> None:
    require_root()
    require_binary("wireguard-go", "wg", "ip", "nsenter", "nft", "git", "bwrap", "dockerd", "busybox")


@pytest.fixture(scope="session")
def rig() -> Iterator[Rig]:
    """The demo's rig (two devices, Docker), up for the whole session, torn down at its end."""
    require_rig_tools()
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    with Rig.up(devices=("home-wsl", "pc-aurgi"), docker=True) as running:
        yield running


# --- the Element-stack modules' rig and client (tests/e2e/test_element*.py) ------------------
# Module-scoped: each module that uses ``erig`` gets a rig of its own (one device, no Docker),
# so a module whose test changes the operator's identity for good cannot touch the others.

ELEMENT_HOME = "home-wsl"


@pytest.fixture(scope="module")
def erig() -> Iterator[Rig]:
    from tests.element.driver import installed

    require_rig_tools()
    if not installed():
        pytest.fail("the Element-stack client is not installed: run `npm ci` in tests/element")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    keep = os.environ.get("ELEMENT_RIG_WORKDIR")  # to read the rig's logs after a failure
    with Rig.up(devices=(ELEMENT_HOME,), docker=False, workdir=Path(keep) if keep else None) as running:
        yield running


@pytest.fixture
async def element(erig: Rig, tmp_path: Path) -> AsyncIterator[ElementClient]:
    from tests.element.driver import ElementClient

    async with ElementClient.spawn(tmp_path / "element-client.log") as el:
        await el.login(erig.homeserver_url, erig.operator_user, erig.operator_password)
        yield el


def element_device_user(rig: Rig) -> str:
    return rig.devices[ELEMENT_HOME].matrix_user
