"""wg_status's rows reused from the last call (StatusRows) equal rows built afresh."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.wg.hub import ONLINE_WINDOW_S, StatusRows, _skip_young_pass
from meshagents.wg.model import PeerState

pytestmark = pytest.mark.unit


def _row(p: PeerState, names: dict[str, tuple[str, str]], t: float) -> dict[str, Any]:
    """One peer's row of wg_status, spelled out plainly: what StatusRows must equal."""
    name, addr = names.get(p.public_key, (None, None))
    h = p.last_handshake
    age = None if h is None else max(0.0, t - h)
    return {
        "public_key": p.public_key,
        "name": name,
        "address": addr,
        "endpoint": p.endpoint,
        "allowed_ips": list(p.allowed_ips),
        "latest_handshake": h,
        "handshake_age_s": None if age is None else round(age, 3),
        "rx_bytes": p.rx_bytes,
        "tx_bytes": p.tx_bytes,
        "online": age is not None and age < ONLINE_WINDOW_S,
    }


T0 = 1_800_000_000.0


def _peer(i: int, handshake: float | None, rx: int, ips: tuple[str, ...]) -> PeerState:
    return PeerState(f"key{i:02d}", ips, None if i % 3 else f"198.51.100.{i}:51820", handshake, rx, 2 * rx,
                     25 if i % 2 else None, bool(i % 4))  # fmt: skip


_state = st.tuples(
    st.one_of(st.none(), st.floats(T0 - 1000, T0 + 10, allow_nan=False)),
    st.integers(0, 2**40),
    st.lists(st.sampled_from(["10.42.0.10/32", "10.42.1.0/24", "fd00::1/128"]), max_size=3).map(tuple),
)
# one call: per peer slot, "same" (the last call's object), "copy" (equal values, another
# object: a re-parsed block) or a new state; then the order, the names, the time, and
# whether the caller changes the rows it got
_call = st.tuples(
    st.lists(st.tuples(st.sampled_from(["same", "copy", "new", "gone"]), _state), min_size=8, max_size=8),
    st.randoms(use_true_random=False),
    st.sampled_from(["same", "other", "empty"]),
    st.floats(T0 - 5, T0 + 400, allow_nan=False),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_call, min_size=1, max_size=6))
def test_rows_equal_rows_built_afresh_over_any_sequence_of_calls(calls: list[Any]) -> None:
    rows_of = StatusRows()
    names: dict[str, tuple[str, str]] = {f"key{i:02d}": (f"dev{i}", f"10.42.0.{i}") for i in range(0, 8, 2)}
    cur: dict[int, PeerState] = {}
    for slots, rnd, names_kind, t, mutate in calls:
        for i, (kind, (h, rx, ips)) in enumerate(slots):
            if kind == "same" and i in cur:
                continue
            if kind == "gone":
                cur.pop(i, None)
            elif kind == "copy" and i in cur:
                cur[i] = PeerState(*cur[i])
            else:
                cur[i] = _peer(i, h, rx, ips)
        peers = list(cur.values())
        rnd.shuffle(peers)  # wireguard-go lists its peers in another order each time
        if names_kind == "other":
            names = {**names, "key01": ("renamed", "10.42.0.99")}
        elif names_kind == "empty":
            names = {}
        got = rows_of.rows(tuple(peers), names, t)
        assert got == [_row(p, names, t) for p in peers]
        if mutate:  # a caller's changes never reach the next call's rows
            for row in got:
                row["allowed_ips"].append("192.0.2.1/32")
                row["name"] = "changed"
                row["online"] = None


def test_an_idle_call_reuses_the_last_rows_and_still_ages_handshakes() -> None:
    rows_of = StatusRows()
    peers = (_peer(1, T0 - 100, 5, ("10.42.0.1/32",)), _peer(2, None, 0, ()))
    names = {"key01": ("a", "10.42.0.1")}
    for t in (T0 + 200, T0 + 1, T0):  # the first builds, the second keeps templates, the third copies
        first = rows_of.rows(peers, names, t)
        assert first == [_row(p, names, t) for p in peers]
        first[0]["allowed_ips"].append("192.0.2.1/32")  # the caller's own rows to change
        first[1]["name"] = "changed"
    assert first[0]["online"] is True and first[0]["handshake_age_s"] == 100.0
    assert first[0]["latest_handshake"] == T0 - 100
    assert rows_of._last[2] is not None  # the templates were used: this test covers that path


def test_skip_young_pass_keeps_the_collector_working() -> None:
    class Node:
        ref: Any = None

    a, b = Node(), Node()
    a.ref, b.ref = b, a  # a cycle: only the collector frees it
    del a, b
    _skip_young_pass()
    assert gc.get_freeze_count() == 0
    assert gc.collect() >= 2  # moved to the oldest generation, still found by a full pass
