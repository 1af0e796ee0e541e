"""One interface over the two WireGuard backends, chosen automatically.

``open_backend(interface, netns, prefer="auto")`` returns the kernel backend when the
kernel has WireGuard (pyroute2's generic netlink family answers), else the userspace
one (wireguard-go or boringtun, driven through the UAPI socket). ``MESHAGENTS_WG_BACKEND``
(``kernel`` / ``userspace``) overrides ``auto``. An interface that already exists keeps
the backend it was made with: a UAPI socket for it means userspace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from meshagents.errors import FnError
from meshagents.wg.model import DeviceState, PeerSpec

BackendName = Literal["auto", "kernel", "userspace"]


class WgBackend(Protocol):
    name: str
    interface: str
    netns: str | None

    def exists(self) -> bool:
        """The WireGuard interface is there and answers."""
        ...

    def create(self) -> bool:
        """Make the interface (no address, not up); False if it was already there."""
        ...

    def delete(self) -> bool:
        """Remove the interface (and its daemon); False if it was not there."""
        ...

    def configure(
        self,
        *,
        private_key: str | None = None,
        listen_port: int | None = None,
        peers: Sequence[PeerSpec] = (),
        replace_peers: bool = False,
    ) -> None:
        """Set device fields and add or update ``peers`` (all of them, with ``replace_peers``)."""
        ...

    def remove_peers(self, public_keys: Sequence[str]) -> None: ...

    def state(self) -> DeviceState: ...


def kernel_available() -> bool:
    """The kernel answers WireGuard generic netlink (module loaded or built in).

    A loaded module shows in /sys/module; only without it is a netlink socket opened
    (which also autoloads the module): under the test VM's emulation that socket costs
    about half a second of every ``wg_status``."""
    if Path("/sys/module/wireguard").is_dir():
        return True
    try:
        from pyroute2 import WireGuard
    except ImportError:
        return False
    try:
        wg = WireGuard()
    except Exception:  # NetlinkError(2) without the module; anything else means no, too
        return False
    wg.close()
    return True


def open_backend(interface: str, netns: str | None = None, prefer: BackendName = "auto") -> WgBackend:
    from meshagents.wg.kernel import KernelBackend
    from meshagents.wg.uapi import UapiClient
    from meshagents.wg.userspace import UserspaceBackend

    check_ifname(interface)
    if prefer == "auto":
        env = os.environ.get("MESHAGENTS_WG_BACKEND", "auto")
        if env in ("kernel", "userspace"):
            prefer = env  # type: ignore[assignment]
    if prefer == "auto":
        if UapiClient(interface).exists():
            prefer = "userspace"
        else:
            prefer = "kernel" if kernel_available() else "userspace"
    if prefer == "kernel":
        return KernelBackend(interface, netns)
    return UserspaceBackend(interface, netns)


def check_ifname(name: str) -> None:
    """Linux interface names: 1-15 bytes, no '/', no whitespace."""
    if not (0 < len(name.encode()) <= 15) or any(c in name for c in "/ \t\n:") or name in (".", ".."):
        raise FnError("invalid_interface", f"bad interface name {name!r} (1-15 chars, no '/', ':' or spaces)")
