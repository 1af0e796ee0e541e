"""Address allocation and the peers ledger: never reuse an address, revoked is final."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.wg.allocation import host_address, next_host, parse_hub_address
from meshagents.wg.ledger import Ledger

pytestmark = pytest.mark.unit

HUB = "10.42.0.1/24"


def test_first_is_dot_10_then_up() -> None:
    hub = parse_hub_address(HUB)
    assert next_host(hub, None) == 10
    assert next_host(hub, 10) == 11
    assert str(host_address(hub, 10)) == "10.42.0.10"


def test_hub_address_is_skipped() -> None:
    hub = parse_hub_address("10.42.0.12/24")
    assert next_host(hub, 11) == 13


def test_pool_exhausted() -> None:
    hub = parse_hub_address(HUB)
    assert next_host(hub, 253) == 254
    with pytest.raises(FnError) as exc:
        next_host(hub, 254)  # .255 is broadcast
    assert exc.value.code == "address_pool_exhausted"


@pytest.mark.parametrize("bad", ["10.42.0.1", "nonsense", "fd00::1/64", "10.42.0.1/31"])
def test_bad_hub_address(bad: str) -> None:
    with pytest.raises(FnError) as exc:
        parse_hub_address(bad + ("/32" if bad == "10.42.0.1" else ""))
    assert exc.value.code == "invalid_address"


def test_ledger_allocates_and_never_reuses(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as led:
        a = led.allocate("KA", "a", HUB, has_psk=False)
        b = led.allocate("KB", "b", HUB, has_psk=True)
        assert (a.address, b.address) == ("10.42.0.10", "10.42.0.11")
        assert b.has_psk and a.status == "active"
        led.set_status("KB", "revoked")
        led.set_status("KA", "removed")
        c = led.allocate("KC", "c", HUB, has_psk=False)
        assert c.address == "10.42.0.12"
        with pytest.raises(FnError) as exc:
            led.allocate("KA", "again", HUB, has_psk=False)
        assert exc.value.code == "peer_conflict"
        with pytest.raises(FnError):
            led.allocate("KD", "c", HUB, has_psk=False)  # device ids are never reused either
        d = led.allocate("KD", "d", HUB, has_psk=False)
        assert d.address == "10.42.0.13", "a failed insert must not consume or reuse an address"
        assert [r.name for r in led.active()] == ["c", "d"]
        assert led.by_name("b") is not None and led.by_name("b").status == "revoked"  # type: ignore[union-attr]
    with Ledger(tmp_path / "l.sqlite") as led:  # survives reopening
        assert led.by_key("KB").status == "revoked"  # type: ignore[union-attr]
        assert led.allocate("KE", "e", HUB, has_psk=False).address == "10.42.0.14"
    assert (tmp_path / "l.sqlite").stat().st_mode & 0o777 == 0o600


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["add", "remove", "revoke"]), min_size=1, max_size=30))
def test_addresses_unique_whatever_happens(tmp_path_factory: pytest.TempPathFactory, ops: list[str]) -> None:
    path = tmp_path_factory.mktemp("ledger") / "l.sqlite"
    seen: list[str] = []
    with Ledger(path) as led:
        for i, op in enumerate(ops):
            if op == "add" or not seen:
                seen.append(led.allocate(f"K{i}", f"n{i}", HUB, has_psk=False).address)
            else:
                key = led.all()[-1].public_key
                led.set_status(key, "removed" if op == "remove" else "revoked")
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, key=lambda a: int(ipaddress.IPv4Address(a)))


def test_cached_names_follow_every_commit_and_a_replaced_file(tmp_path: Path) -> None:
    from meshagents.wg.ledger import cached_meta, cached_names

    path = tmp_path / "wg0.sqlite"
    k1, k2, k3 = ("a" * 43 + "=", "b" * 43 + "=", "c" * 43 + "=")
    with Ledger(path) as led:
        led.allocate(k1, "one", HUB, False)
    assert cached_names(path) == {k1: ("one", "10.42.0.10")}
    assert cached_names(path) is cached_names(path)  # unchanged: the same dict, no query
    with Ledger(path) as led:  # another connection commits: the next call sees it
        led.allocate(k2, "two", HUB, False)
    assert set(cached_names(path)) == {k1, k2}
    with Ledger(path) as led:
        led.set_meta("netns", "ns1")
    assert cached_meta(path)["netns"] == "ns1"
    for suffix in ("", "-wal", "-shm"):  # the file replaced (a restore): another inode
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with Ledger(path) as led:
        led.allocate(k3, "three", HUB, False)
    assert cached_names(path) == {k3: ("three", "10.42.0.10")}
