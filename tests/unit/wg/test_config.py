"""wg-quick render/parse: round trips (hypothesis) and clear errors."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.wg.config import InterfaceSection, PeerSection, WgQuickConfig, parse, render

pytestmark = pytest.mark.unit

keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
octet = st.integers(0, 255)
cidrs = st.builds(
    lambda a, b, c, d, n: f"{a}.{b}.{c}.{d}/{n}", octet, octet, octet, octet, st.integers(0, 32)
)
# values: no newline, no '#' (wg-quick strips comments anywhere), no ',' in list items, trimmed
text = (
    st.text(alphabet=string.ascii_letters + string.digits + " -_./:$%%é", min_size=1, max_size=20)
    .map(str.strip)
    .filter(bool)
)
extra_keys = st.sampled_from(["PostUp", "PostDown", "Table", "FwMark", "SaveConfig", "PreUp"])
extras = st.lists(st.tuples(extra_keys, text), max_size=3).map(tuple)
names = st.builds(lambda a, b: a + b, st.sampled_from("abcXYZ019"), st.text("abz09_.-", max_size=12))

interfaces = st.builds(
    InterfaceSection,
    private_key=st.none() | keys,
    addresses=st.lists(cidrs, max_size=3).map(tuple),
    listen_port=st.none() | st.integers(1, 65535),
    dns=st.lists(st.sampled_from(["10.42.0.1", "1.1.1.1", "mesh.local"]), max_size=2).map(tuple),
    mtu=st.none() | st.integers(1280, 9000),
    extra=extras,
)
peers = st.builds(
    PeerSection,
    public_key=keys,
    allowed_ips=st.lists(cidrs, max_size=4).map(tuple),
    name=st.none() | names,
    preshared_key=st.none() | keys,
    endpoint=st.none()
    | st.builds(
        lambda h, p: f"{h}:{p}", st.sampled_from(["198.18.0.1", "hub.example"]), st.integers(1, 65535)
    ),
    persistent_keepalive=st.none() | st.integers(1, 65535),
    extra=extras.filter(lambda e: all(k in ("PostUp", "Table") for k, _ in e)),
)
configs = st.builds(WgQuickConfig, interface=interfaces, peers=st.lists(peers, max_size=5).map(tuple))


@settings(max_examples=100, deadline=None)
@given(configs)
def test_render_parse_round_trip(cfg: WgQuickConfig) -> None:
    assert parse(render(cfg)) == cfg


@settings(max_examples=30, deadline=None)
@given(configs)
def test_render_is_stable(cfg: WgQuickConfig) -> None:
    text = render(cfg)
    assert render(parse(text)) == text


def test_parses_what_wg_quick_accepts() -> None:
    text = """
    # a comment
    [interface]
    privatekey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=   # trailing comment
    Address = 10.42.0.1/24, fd00::1/64
    Address = 10.43.0.1/24
    LISTENPORT = 51820
    PostUp = nft add rule x

    [Peer]
    # Name = phone
    PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
    AllowedIPs = 10.42.0.10/32,10.42.0.11/32
    PersistentKeepalive = off
    """
    cfg = parse(text)
    assert cfg.interface.addresses == ("10.42.0.1/24", "fd00::1/64", "10.43.0.1/24")
    assert cfg.interface.listen_port == 51820
    assert cfg.interface.extra == (("PostUp", "nft add rule x"),)
    (p,) = cfg.peers
    assert p.name == "phone"
    assert p.allowed_ips == ("10.42.0.10/32", "10.42.0.11/32")
    assert p.persistent_keepalive is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[Interface]\nListenPort = abc\n", "line 2: ListenPort must be an integer"),
        ("[Interface]\n[Interface]\n", "line 2: a second [Interface]"),
        ("[Wat]\n", "line 1: unknown section"),
        ("[Interface]\njunk\n", "line 2: expected 'Key = value'"),
        ("PrivateKey = x\n", "outside any section"),
        ("[Peer]\nAllowedIPs = 10.0.0.1/32\n", "has no PublicKey"),
    ],
)
def test_parse_errors_are_clear(text: str, fragment: str) -> None:
    with pytest.raises(FnError) as exc:
        parse(text)
    assert exc.value.code == "config_invalid"
    assert fragment in exc.value.message


def test_with_and_without_peer() -> None:
    a, b = PeerSection(public_key="A"), PeerSection(public_key="B")
    cfg = WgQuickConfig(peers=(a, b))
    a2 = PeerSection(public_key="A", allowed_ips=("10.42.0.10/32",))
    assert cfg.with_peer(a2).peers == (a2, b)  # replaced in place, order kept
    assert cfg.without_peer("A").peers == (b,)
    assert cfg.with_peer(PeerSection(public_key="C")).peers[-1].public_key == "C"
