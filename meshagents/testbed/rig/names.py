"""Per-run names of the rig: namespaces, interfaces, veths, the cgroup of its Docker engine.

    names = RunNames.new()                 # or RunNames(suffix="a1b2c3")
    names.hub_ns, names.hub_wg             # "rh<sfx>", "rw<sfx>h"
    names.device(1)                        # DeviceNames(ns="rd<sfx>1", wg="rw<sfx>1", ...)

Interface names must be unique machine-wide (wireguard-go's UAPI socket directory is
one for the whole machine) and at most 15 characters; namespaces need only be unique,
but carry the same suffix so a leftover is easy to tie to its run. Pure: no I/O.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from meshagents.errors import FnError

IFNAMSIZ = 15  # Linux interface names: 15 characters plus the NUL
HUB_UNDERLAY = "198.19.0.1"  # the hub's "public" address on the underlay bridge
UNDERLAY_PREFIX = 24
HUB_MESH = "10.42.0.1"  # inside namespaces only
MESH_CIDR = "10.42.0.1/24"
_SUFFIX = re.compile(r"^[0-9a-f]{6}$")
_DEVICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


def check_device_name(name: str) -> str:
    """A device name usable as a room alias part and a WireGuard peer name."""
    if not _DEVICE.match(name):
        raise FnError("bad_device_name", f"device name {name!r}: lowercase letters, digits and '-' (max 31)")
    return name


@dataclass(frozen=True)
class DeviceNames:
    index: int
    ns: str
    wg: str
    veth_hub: str  # enslaved to the hub's underlay bridge
    veth_dev: str
    underlay: str  # the device's underlay address on the bridge (198.19.0.0/24)


@dataclass(frozen=True)
class RunNames:
    suffix: str

    def __post_init__(self) -> None:
        if not _SUFFIX.match(self.suffix):
            raise FnError("bad_suffix", f"run suffix {self.suffix!r} must be 6 lowercase hex digits")

    @classmethod
    def new(cls) -> RunNames:
        return cls(secrets.token_hex(3))

    @property
    def hub_ns(self) -> str:
        return f"rh{self.suffix}"

    @property
    def hub_wg(self) -> str:
        return f"rw{self.suffix}h"

    @property
    def bridge(self) -> str:
        """The hub's underlay bridge (198.19.0.1/24): every device's veth hangs on it."""
        return f"rb{self.suffix}"

    @property
    def docker_ns(self) -> str:
        return f"rk{self.suffix}"

    @property
    def docker_cgroup(self) -> str:
        # absolute: a relative cgroup parent nests under the caller's cgroup (FIELD-NOTES)
        return f"/meshagents-rig-{self.suffix}"

    @property
    def docker_image(self) -> str:
        return f"meshagents-demo:{self.suffix}"

    @property
    def container(self) -> str:
        return f"demo-web-{self.suffix}"

    def device(self, index: int) -> DeviceNames:
        """Names of the index-th device (1-based; at most 250 devices)."""
        if not 1 <= index <= 250:
            raise FnError("bad_device_index", f"device index {index} out of 1..250")
        names = DeviceNames(
            index=index,
            ns=f"rd{self.suffix}{index}",
            wg=f"rw{self.suffix}{index}",
            veth_hub=f"rv{self.suffix}h{index}",
            veth_dev=f"rv{self.suffix}d{index}",
            # the underlay: 198.18.0.0/15 only (benchmarking range), inside namespaces
            underlay=f"198.19.0.{10 + index}",
        )
        for ifname in (names.wg, names.veth_hub, names.veth_dev, self.hub_wg, self.bridge):
            assert len(ifname) <= IFNAMSIZ, ifname
        return names

    def all_namespaces(self, devices: int) -> list[str]:
        return [self.hub_ns, self.docker_ns, *(self.device(i).ns for i in range(1, devices + 1))]
