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

See meshagents/rig/rig.py for the API (restart_agent, kill_agent, hub_interface_down/up,
fn(...), approvals through ``op.approve``). ``root_netns_snapshot`` gives the root
namespace's namespaces and IPv4 routes, for tests that prove nothing leaked into it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from meshagents.rig import Rig
from tests.conftest import require_binary, require_root


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
