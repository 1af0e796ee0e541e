"""The userspace backend: wireguard-go (or boringtun) as a daemon, configured over UAPI.

The daemon is started detached (without ``WG_PROCESS_FOREGROUND`` wireguard-go forks
itself and the launcher exits once the interface is up), inside the namespace through
``nsenter``, so it outlives a short ``./fn run``. It stops when its interface is deleted
(``delete()``: pyroute2 ``link del``), which also removes the UAPI socket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence

from meshagents.errors import FnError
from meshagents.wg import links
from meshagents.wg.model import DeviceState, PeerSpec
from meshagents.wg.netns import check_netns, wrap
from meshagents.wg.uapi import UapiClient, render_set


def implementation() -> str:
    """The userspace binary: ``WG_QUICK_USERSPACE_IMPLEMENTATION`` (as wg-quick), else wireguard-go."""
    return os.environ.get("WG_QUICK_USERSPACE_IMPLEMENTATION") or "wireguard-go"


class UserspaceBackend:
    name = "userspace"

    def __init__(self, interface: str, netns: str | None = None) -> None:
        self.interface = interface
        self.netns = netns
        self.uapi = UapiClient(interface)

    def exists(self) -> bool:
        # a socket file alone may be stale (its daemon died): it must accept a connection
        return self.uapi.exists() and self.uapi.answers()

    def create(self) -> bool:
        if self.exists():
            return False
        check_netns(self.netns)
        binary = implementation()
        if shutil.which(binary) is None:
            raise FnError("missing_binary", f"{binary} is not installed (run wg_install)")
        if links.link_exists(self.interface, self.netns):
            raise FnError("interface_busy", f"a link {self.interface!r} exists but has no UAPI socket")
        if self.uapi.path.exists():
            self.uapi.path.unlink()  # stale
        env = dict(os.environ, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
        env.pop("WG_PROCESS_FOREGROUND", None)
        env.pop("LOG_LEVEL", None)  # without it the daemon's stdio is /dev/null: our pipes close
        proc = subprocess.run(
            wrap([binary, self.interface], self.netns),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        if proc.returncode != 0:
            raise FnError(
                "wg_start_failed",
                f"{binary} {self.interface} exited {proc.returncode}: {proc.stderr.strip()[:300]}",
            )
        deadline = time.monotonic() + 5.0
        while not self.exists():
            if time.monotonic() > deadline:
                raise FnError("wg_start_failed", f"{binary} started but {self.uapi.path} never answered")
            time.sleep(0.005)
        return True

    def delete(self) -> bool:
        had = links.link_exists(self.interface, self.netns)
        if had:
            links.delete_link(self.interface, self.netns)
        # the daemon notices the TUN is gone and removes its socket; wait briefly for it
        deadline = time.monotonic() + 3.0
        while self.uapi.path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return had

    def configure(
        self,
        *,
        private_key: str | None = None,
        listen_port: int | None = None,
        peers: Sequence[PeerSpec] = (),
        replace_peers: bool = False,
    ) -> None:
        self.uapi.set(
            render_set(
                private_key=private_key, listen_port=listen_port, replace_peers=replace_peers, peers=peers
            )
        )

    def remove_peers(self, public_keys: Sequence[str]) -> None:
        if public_keys:
            self.uapi.set(render_set(remove=public_keys))

    def state(self) -> DeviceState:
        return self.uapi.get()[1]
