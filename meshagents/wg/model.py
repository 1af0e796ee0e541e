"""Data that crosses the backend boundary: what we ask for and what the device reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class PeerSpec:
    """A peer as we want it on the device (keys in base64)."""

    public_key: str
    allowed_ips: tuple[str, ...] = ()
    preshared_key: str | None = None
    endpoint: str | None = None  # "host:port"; the hub leaves it to roaming
    persistent_keepalive: int | None = None


class PeerState(NamedTuple):
    """A peer as the device reports it (a NamedTuple: 10,000 of them are built per status)."""

    public_key: str
    allowed_ips: tuple[str, ...] = ()
    endpoint: str | None = None
    last_handshake: float | None = None  # unix seconds, None if never
    rx_bytes: int = 0
    tx_bytes: int = 0
    persistent_keepalive: int | None = None
    has_preshared_key: bool = False


@dataclass(frozen=True)
class DeviceState:
    """The whole device as the backend reports it (private key never included)."""

    public_key: str | None
    listen_port: int | None
    peers: tuple[PeerState, ...] = field(default_factory=tuple)
