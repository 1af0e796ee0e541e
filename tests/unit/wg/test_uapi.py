"""The UAPI text protocol: requests built and answers parsed without a socket."""

from __future__ import annotations

import base64
import socket
import threading
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.wg.model import PeerSpec
from meshagents.wg.uapi import UapiClient, parse_errno, parse_get, render_set

pytestmark = pytest.mark.unit

PRIV = base64.b64encode(bytes(range(32))).decode()
PUB1 = base64.b64encode(b"\x01" * 32).decode()
PUB2 = base64.b64encode(b"\x02" * 32).decode()
PSK = base64.b64encode(b"\x03" * 32).decode()


def test_render_set_device_and_peers() -> None:
    text = render_set(
        private_key=PRIV,
        listen_port=51820,
        replace_peers=True,
        peers=[
            PeerSpec(
                PUB1, ("10.42.0.10/32",), preshared_key=PSK, persistent_keepalive=25, endpoint="1.2.3.4:5"
            )
        ],
        remove=[PUB2],
    )
    assert text == (
        "set=1\n"
        f"private_key={bytes(range(32)).hex()}\n"
        "listen_port=51820\n"
        "replace_peers=true\n"
        f"public_key={'02' * 32}\nremove=true\n"
        f"public_key={'01' * 32}\n"
        f"preshared_key={'03' * 32}\n"
        "endpoint=1.2.3.4:5\n"
        "persistent_keepalive_interval=25\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=10.42.0.10/32\n"
        "\n"
    )


GET_ANSWER = (
    f"private_key={bytes(range(32)).hex()}\n"
    "listen_port=51820\n"
    f"public_key={'01' * 32}\n"
    f"preshared_key={'00' * 32}\n"
    "protocol_version=1\n"
    "endpoint=198.19.1.2:51820\n"
    "last_handshake_time_sec=1700000000\n"
    "last_handshake_time_nsec=500000000\n"
    "tx_bytes=100\n"
    "rx_bytes=200\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=10.42.0.10/32\n"
    "allowed_ip=10.42.1.0/24\n"
    f"public_key={'02' * 32}\n"
    f"preshared_key={'03' * 32}\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "tx_bytes=0\n"
    "rx_bytes=0\n"
    "persistent_keepalive_interval=25\n"
    "errno=0\n\n"
)


def test_parse_get() -> None:
    from functions.wg.wg_keygen import public_from_private

    private, state = parse_get(GET_ANSWER)
    assert private == PRIV
    assert state.public_key == public_from_private(PRIV)
    assert state.listen_port == 51820
    p1, p2 = state.peers
    assert p1.public_key == PUB1 and p1.endpoint == "198.19.1.2:51820"
    assert p1.allowed_ips == ("10.42.0.10/32", "10.42.1.0/24")
    assert p1.last_handshake == pytest.approx(1700000000.5)
    assert (p1.rx_bytes, p1.tx_bytes) == (200, 100)
    assert p1.persistent_keepalive is None and p1.has_preshared_key is False
    assert p2.public_key == PUB2 and p2.last_handshake is None and p2.endpoint is None
    assert p2.persistent_keepalive == 25 and p2.has_preshared_key is True
    assert parse_errno(GET_ANSWER) == 0


def test_errno() -> None:
    assert parse_errno("errno=22\n\n") == 22
    with pytest.raises(FnError):
        parse_errno("listen_port=1\n")


def test_client_against_a_fake_socket(tmp_path: Path) -> None:
    """The client reads to the errno line and maps failures to FnError codes."""
    path = tmp_path / "wgx.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(4)
    got: list[bytes] = []

    def serve() -> None:
        for answer in (GET_ANSWER.encode(), b"errno=1\n\n"):
            conn, _ = srv.accept()
            got.append(conn.recv(65536))
            conn.sendall(answer)  # no close: the client must stop at the blank line
            conn.recv(1)  # wait for the client to hang up
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = UapiClient("wgx", socket_dir=tmp_path, timeout=5)
    assert client.exists()
    _, state = client.get()
    assert len(state.peers) == 2
    with pytest.raises(FnError) as exc:
        client.set(render_set(listen_port=1))
    assert exc.value.code == "wg_uapi_error"
    t.join(5)
    assert got[0] == b"get=1\n\n" and got[1].startswith(b"set=1\n")
    srv.close()
    with pytest.raises(FnError) as exc:
        UapiClient("absent", socket_dir=tmp_path).get()
    assert exc.value.code == "wg_interface_missing"
