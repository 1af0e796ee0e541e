"""wg_status's rows: copied from the last call for idle peers, built afresh otherwise;
either way exactly the rows built from scratch, in fresh objects."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.wg.model import PeerState
from meshagents.wg.status_rows import RowCache, build_row

pytestmark = pytest.mark.unit

WINDOW = 180.0
_keys = [base64.b64encode(bytes([i]) * 32).decode() for i in range(6)]
_state = st.builds(
    PeerState,
    st.sampled_from(_keys),
    st.lists(st.sampled_from(["10.42.0.2/32", "fd00::2/128"]), max_size=2).map(tuple),
    st.one_of(st.none(), st.just("198.51.100.7:51820")),
    st.one_of(st.none(), st.floats(1_600_000_000, 1_800_000_000)),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.one_of(st.none(), st.just(25)),
    st.booleans(),
)
_names = st.dictionaries(st.sampled_from(_keys), st.tuples(st.text("abc", min_size=1), st.just("10.42.0.9")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_state, max_size=6), min_size=1, max_size=4), _names, st.data())
def test_rows_equal_rows_built_from_scratch(calls: list[list[PeerState]], names: dict[str, tuple[str, str]],
                                            data: st.DataObject) -> None:
    cache = RowCache(WINDOW)
    last: list[PeerState] = []
    handed: list[dict[str, object]] = []
    for i, fresh in enumerate(calls):
        # some peers idle (the very same PeerState object as at the last call), some new
        peers = [p for p in last if data.draw(st.booleans())] + fresh
        if data.draw(st.booleans()):
            names = dict(names)  # the ledger changed: another names object
        t = 1_700_000_000.0 + 400.0 * i + data.draw(st.floats(0, 300))
        rows = cache.rows(peers, cache.prepare(names, t), names, t)
        assert rows == [build_row(p, names, t, WINDOW) for p in peers]
        assert not any(r is h for r in rows for h in handed)  # fresh dicts on every call
        assert not any(r["allowed_ips"] is h["allowed_ips"] for r in rows for h in handed)
        for r in rows:
            r["allowed_ips"].append("mutated by a caller")  # never seen by the next call
        handed = [*handed, *rows]
        last = peers


def test_an_idle_row_moves_its_age_and_online_flag() -> None:
    peer = PeerState(_keys[0], ("10.42.0.2/32",), None, 1_000.0)
    cache = RowCache(WINDOW)
    names = {_keys[0]: ("dev", "10.42.0.2")}
    cache.rows([peer], cache.prepare(names, 1_100.0), names, 1_100.0)
    (row,) = cache.rows([peer], cache.prepare(names, 1_190.5), names, 1_190.5)
    assert row["handshake_age_s"] == 190.5 and row["online"] is False and row["name"] == "dev"
