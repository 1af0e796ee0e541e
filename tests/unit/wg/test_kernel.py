"""The kernel backend's netlink messages, built and decoded without the kernel module.

The requests are encoded with pyroute2's own WireGuard message class exactly as
``WireGuard.set`` would send them, then decoded again and checked field by field.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from meshagents.wg.kernel import parse_info, peer_request, remove_request
from meshagents.wg.model import PeerSpec

pytestmark = pytest.mark.unit

pytest.importorskip("pyroute2")

from pyroute2.netlink.generic.wireguard import (  # noqa: E402
    WGPEER_F_REMOVE_ME,
    WGPEER_F_REPLACE_ALLOWEDIPS,
    AsyncWireGuard,
    wgmsg,
)

PUB = base64.b64encode(b"\x11" * 32).decode()
PSK = base64.b64encode(b"\x22" * 32).decode()


def encode_peer(peer: dict[str, Any], *device_attrs: list[Any]) -> wgmsg:
    """Build the set message as pyroute2 does (no socket), encode it, decode the bytes."""
    msg = wgmsg()
    msg["cmd"] = 1  # WG_CMD_SET_DEVICE
    msg["version"] = 1
    msg["attrs"].append(["WGDEVICE_A_IFNAME", "wg0"])
    msg["attrs"].extend(device_attrs)
    builder = AsyncWireGuard.__new__(AsyncWireGuard)  # only the pure helpers are used
    builder._wg_set_peer(msg, peer)
    msg.encode()
    out = wgmsg(msg.data)
    out.decode()
    return out


def test_peer_request_shape() -> None:
    spec = PeerSpec(
        PUB, ("10.42.0.10/32",), preshared_key=PSK, endpoint="198.18.0.1:51820", persistent_keepalive=25
    )
    assert peer_request(spec) == {
        "public_key": PUB,
        "replace_allowed_ips": True,
        "allowed_ips": ["10.42.0.10/32"],
        "preshared_key": PSK,
        "persistent_keepalive": 25,
        "endpoint_addr": "198.18.0.1",
        "endpoint_port": 51820,
    }
    assert peer_request(PeerSpec(PUB, endpoint="[fd00::1]:51820"))["endpoint_addr"] == "fd00::1"
    assert remove_request(PUB) == {"public_key": PUB, "remove": True}


def test_add_peer_message_on_the_wire() -> None:
    spec = PeerSpec(PUB, ("10.42.0.10/32", "10.42.1.0/24"), preshared_key=PSK, persistent_keepalive=25)
    msg = encode_peer(peer_request(spec))
    assert msg.get_attr("WGDEVICE_A_IFNAME") == "wg0"
    (peer,) = msg.get_attr("WGDEVICE_A_PEERS")
    assert base64.b64decode(peer.get_attr("WGPEER_A_PUBLIC_KEY")) == b"\x11" * 32
    assert base64.b64decode(peer.get_attr("WGPEER_A_PRESHARED_KEY")) == b"\x22" * 32
    assert peer.get_attr("WGPEER_A_FLAGS") == WGPEER_F_REPLACE_ALLOWEDIPS
    assert peer.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") == 25
    ips = [ip["addr"] for ip in peer.get_attr("WGPEER_A_ALLOWEDIPS")]
    assert ips == ["10.42.0.10/32", "10.42.1.0/24"]


def test_remove_peer_message_on_the_wire() -> None:
    msg = encode_peer(remove_request(PUB))
    (peer,) = msg.get_attr("WGDEVICE_A_PEERS")
    assert peer.get_attr("WGPEER_A_FLAGS") == WGPEER_F_REMOVE_ME
    assert peer.get_attr("WGPEER_A_ALLOWEDIPS") is None


def test_parse_info_from_decoded_messages() -> None:
    """A device answer (as the kernel would send it) becomes our DeviceState."""
    spec = PeerSpec(PUB, ("10.42.0.10/32",), persistent_keepalive=25)
    msg = encode_peer(peer_request(spec), ["WGDEVICE_A_LISTEN_PORT", 51820])
    state = parse_info([msg])
    assert state.listen_port == 51820
    (p,) = state.peers
    assert p.public_key == PUB
    assert p.allowed_ips == ("10.42.0.10/32",)
    assert p.persistent_keepalive == 25
    assert p.last_handshake is None and p.rx_bytes == 0
