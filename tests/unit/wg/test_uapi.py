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
    from meshagents.wg.keys import public_from_private

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


# --- the fast path (wireguard-go's fixed layout) gives exactly what the line parser gives ----

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from meshagents.wg.uapi import _parse_get_lines, _parse_peers_fast  # noqa: E402

_peer = st.fixed_dictionaries(
    {
        "key": st.binary(min_size=32, max_size=32),
        "psk": st.one_of(st.just(b"\0" * 32), st.binary(min_size=32, max_size=32)),
        "endpoint": st.one_of(st.none(), st.just("198.51.100.7:51820"), st.just("[2001:db8::1]:4242")),
        "sec": st.one_of(st.just(0), st.integers(1, 2**33)),
        "nsec": st.integers(0, 999_999_999),
        "tx": st.integers(0, 2**40),
        "rx": st.integers(0, 2**40),
        "ka": st.sampled_from([0, 25]),
        "ips": st.lists(st.sampled_from(["10.42.0.10/32", "10.42.1.0/24", "fd00::1/128"]), max_size=3),
    }
)


def _wireguard_go_answer(peers: list[dict[str, object]]) -> str:
    """An answer laid out as wireguard-go writes it (device/uapi.go)."""
    lines = [f"private_key={bytes(range(32)).hex()}", "listen_port=51820"]
    for p in peers:
        lines += [f"public_key={p['key'].hex()}", f"preshared_key={p['psk'].hex()}", "protocol_version=1"]  # type: ignore[union-attr]
        if p["endpoint"]:
            lines.append(f"endpoint={p['endpoint']}")
        lines += [f"last_handshake_time_sec={p['sec']}", f"last_handshake_time_nsec={p['nsec']}",
                  f"tx_bytes={p['tx']}", f"rx_bytes={p['rx']}", f"persistent_keepalive_interval={p['ka']}"]
        lines += [f"allowed_ip={ip}" for ip in p["ips"]]  # type: ignore[attr-defined]
    return "\n".join(lines) + "\nerrno=0\n\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(_peer, max_size=6))
def test_fast_path_equals_the_line_parser(peers: list[dict[str, object]]) -> None:
    text = _wireguard_go_answer(peers)
    assert _parse_peers_fast(text) is not None
    assert parse_get(text) == _parse_get_lines(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(_peer, min_size=1, max_size=4), st.integers(0, 10**6), st.sampled_from(
    ["new_field=1", "endpoint=203.0.113.1:1", "protocol_version=2", "allowed_ip=10.9.9.9/32"]))
def test_any_other_layout_falls_back_to_the_same_result(peers: list[dict[str, object]], where: int,
                                                        extra: str) -> None:
    lines = _wireguard_go_answer(peers).split("\n")
    at = 3 + where % (len(lines) - 5)  # somewhere among the peers' lines, before errno=
    text = "\n".join([*lines[:at], extra, *lines[at:]])
    assert parse_get(text) == _parse_get_lines(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(_peer, min_size=1, max_size=5), st.lists(_peer, max_size=5), st.data())
def test_blocks_reused_from_the_last_answer_never_go_stale(
    before: list[dict[str, object]], added: list[dict[str, object]], data: st.DataObject
) -> None:
    """A second answer (some peers changed, some gone, some new) parses to what the line
    parser reads from it, whatever the last answer left behind."""
    parse_get(_wireguard_go_answer(before))  # leaves its blocks behind for the next parse
    kept = [p for p in before if data.draw(st.booleans())]
    changed = [{**p, "rx": int(p["rx"]) + 1} if data.draw(st.booleans()) else p for p in kept]  # type: ignore[call-overload]
    text = _wireguard_go_answer([*changed, *added])
    assert _parse_peers_fast(text) is not None
    assert parse_get(text) == _parse_get_lines(text)
    assert parse_get(text) == _parse_get_lines(text)  # again, every block from the last one


_CHANGES = ["rx", "tx", "sec", "nsec", "endpoint", "ka", "ips", "psk"]


@settings(max_examples=200, deadline=None)
@given(st.lists(_peer, min_size=1, max_size=5), st.data())
def test_a_block_with_other_counters_or_fields_parses_as_the_line_parser_reads_it(
    before: list[dict[str, object]], data: st.DataObject
) -> None:
    """Per key, the last block is kept cut around its counters: a new block of a known key
    (counters moved, or the endpoint, keepalive, allowed IPs, preshared key changed) gives
    what the line parser gives, whichever part of it changed."""
    import meshagents.wg.uapi as uapi

    parse_get(_wireguard_go_answer(before))
    uapi._last_blocks = {}  # no block text reused: only the per-key cut can help
    after = []
    for p in before:
        field = data.draw(st.sampled_from(_CHANGES))
        after.append({**p, field: data.draw(_peer)[field]})
    text = _wireguard_go_answer(after)
    assert _parse_peers_fast(text) is not None
    assert parse_get(text) == _parse_get_lines(text)


from meshagents.wg.uapi import AnswerStream  # noqa: E402


def _streamed(text: str, cuts: list[int]) -> tuple[str | None, object]:
    data = text.encode()
    stream = AnswerStream()
    at = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        stream.feed(data[at:cut])
        at = cut
    stream.feed(data[at:])
    assert stream.text() == text
    return stream.result()


@settings(max_examples=300, deadline=None)
@given(st.lists(_peer, max_size=6), st.lists(st.integers(0, 10**6), max_size=12),
       st.sampled_from([None, "new_field=1", "endpoint=203.0.113.1:1", "allowed_ip=10.9.9.9/32", "name=é☃"]),
       st.integers(0, 10**6), st.booleans())
def test_an_answer_parsed_as_it_streams_in_equals_the_whole_text_parsed(
    peers: list[dict[str, object]], cuts: list[int], extra: str | None, where: int, warm: bool
) -> None:
    """Cut anywhere (inside ``public_key=``, inside a UTF-8 character), wireguard-go's layout
    or any other one, with or without the last answer's blocks: the same result."""
    import meshagents.wg.uapi as uapi

    text = _wireguard_go_answer(peers)
    if extra is not None:
        lines = text.split("\n")
        at = 2 + where % (len(lines) - 4)  # among the peers' lines, before errno= (its last line)
        text = "\n".join([*lines[:at], extra, *lines[at:]])
    if warm:
        parse_get(text)
    else:
        uapi._last_blocks, uapi._by_key = {}, {}
    assert _streamed(text, cuts) == _parse_get_lines(text)
    assert _streamed(text, cuts) == parse_get(text)
