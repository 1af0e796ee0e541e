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


# --- decode_dump: our struct decoder of the raw GET answer, against pyroute2's own decoding ---

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from meshagents.wg.kernel import decode_dump  # noqa: E402

_keys = st.binary(min_size=32, max_size=32).filter(lambda b: b != bytes(32)).map(
    lambda b: base64.b64encode(b).decode()
)
_v4 = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: f"{'.'.join(str((t[0] >> s) & 255) for s in (24, 16, 8, 0))}/{t[1]}"
)
_v6 = st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 128)).map(
    lambda t: f"{__import__('ipaddress').IPv6Address(t[0]).compressed}/{t[1]}"
)
_endpoint = st.one_of(
    st.none(),
    st.tuples(_v4, st.integers(1, 65535)).map(lambda t: (t[0].split("/")[0], t[1])),
    st.tuples(_v6, st.integers(1, 65535)).map(lambda t: (t[0].split("/")[0], t[1])),
)
_peer = st.fixed_dictionaries({
    "key": _keys,
    "psk": st.one_of(st.none(), _keys),
    "endpoint": _endpoint,
    "ka": st.integers(0, 65535),
    "hs": st.one_of(st.none(), st.tuples(st.integers(1, 2**40), st.integers(0, 999_999_999))),
    "rx": st.integers(0, 2**63),
    "tx": st.integers(0, 2**63),
    "ips": st.lists(st.one_of(_v4, _v6), max_size=4),
})  # fmt: skip


def _answer(peers: list[dict[str, Any]], *, port: int | None, public: str | None) -> bytes:
    """A WG_CMD_GET_DEVICE answer as the kernel sends it, encoded by pyroute2's classes."""
    builder = AsyncWireGuard.__new__(AsyncWireGuard)
    msg = wgmsg()
    msg["cmd"] = 0  # WG_CMD_GET_DEVICE
    msg["version"] = 1
    msg["attrs"].append(["WGDEVICE_A_IFNAME", "wg0"])
    if port is not None:
        msg["attrs"].append(["WGDEVICE_A_LISTEN_PORT", port])
    if public is not None:
        msg["attrs"].append(["WGDEVICE_A_PUBLIC_KEY", public])
    entries = []
    for p in peers:
        attrs: list[Any] = [["WGPEER_A_PUBLIC_KEY", p["key"]]]
        attrs.append(["WGPEER_A_PRESHARED_KEY", p["psk"] or base64.b64encode(bytes(32)).decode()])
        if p["endpoint"]:
            attrs.append(["WGPEER_A_ENDPOINT", {"addr": p["endpoint"][0], "port": p["endpoint"][1]}])
        attrs.append(["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", p["ka"]])
        sec, nsec = p["hs"] or (0, 0)
        attrs.append(["WGPEER_A_LAST_HANDSHAKE_TIME", {"tv_sec": sec, "tv_nsec": nsec}])
        attrs.append(["WGPEER_A_RX_BYTES", p["rx"]])
        attrs.append(["WGPEER_A_TX_BYTES", p["tx"]])
        if p["ips"]:
            attrs.append(["WGPEER_A_ALLOWEDIPS", builder._wg_build_allowedips(p["ips"])])
        entries.append({"attrs": attrs})
    if entries:
        msg["attrs"].append(["WGDEVICE_A_PEERS", entries])
    msg.encode()
    return bytes(msg.data)


def _pyroute2_decoded(raw: bytes) -> wgmsg:
    out = wgmsg(bytearray(raw))
    out.decode()
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_peer, max_size=6, unique_by=lambda p: p["key"]),
    st.one_of(st.none(), st.integers(0, 65535)),
    st.one_of(st.none(), _keys),
    st.integers(1, 3),
)
def test_decode_dump_agrees_with_pyroute2(
    peers: list[dict[str, Any]], port: int | None, public: str | None, parts: int
) -> None:
    """Split over several messages, as a big device's dump is: the same DeviceState."""
    chunks = [peers[i::parts] for i in range(parts)]
    raws = [_answer(c, port=port, public=public) for c in chunks]
    ours = decode_dump(raws)
    theirs = parse_info([_pyroute2_decoded(r) for r in raws])
    assert ours.listen_port == theirs.listen_port == port
    assert ours.public_key == theirs.public_key == public
    assert sorted(ours.peers) == sorted(theirs.peers)
    for p in peers:
        (got,) = [q for q in ours.peers if q.public_key == p["key"]]
        assert got.allowed_ips == tuple(p["ips"])
        assert got.has_preshared_key is (p["psk"] is not None)
        assert got.persistent_keepalive == (p["ka"] or None)
        assert got.rx_bytes == p["rx"] and got.tx_bytes == p["tx"]


def test_decode_dump_continues_a_peer_split_over_messages() -> None:
    ip1, ip2 = ["10.42.0.10/32"], ["10.42.1.0/24"]
    first = _answer([{"key": PUB, "psk": None, "endpoint": ("198.51.100.9", 51820), "ka": 25,
                      "hs": (1700000000, 5), "rx": 1, "tx": 2, "ips": ip1}],
                    port=51820, public=PSK)  # fmt: skip
    second = _answer([{"key": PUB, "psk": None, "endpoint": None, "ka": 0, "hs": None, "rx": 1, "tx": 2,
                       "ips": ip2}], port=None, public=None)  # fmt: skip
    (p,) = decode_dump([first, second]).peers
    assert p.allowed_ips == ("10.42.0.10/32", "10.42.1.0/24")
    assert p.endpoint == "198.51.100.9:51820" and p.last_handshake is not None


def test_decode_dump_refuses_a_truncated_attribute() -> None:
    raw = bytearray(_answer([], port=51820, public=None))
    raw[20:22] = (200).to_bytes(2, "little")  # first attribute claims more than the message holds
    from meshagents.errors import FnError

    with pytest.raises(FnError) as exc:
        decode_dump([bytes(raw)])
    assert exc.value.code == "wg_netlink_error"
