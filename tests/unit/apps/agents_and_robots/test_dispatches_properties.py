"""Hypothesis over status sequences: the store follows its graph and its timings."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.dispatches import FINAL, STATUSES, TRANSITIONS, DispatchStore
from meshagents.errors import FnError

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
_ids = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatchStore]:
    s = DispatchStore(Path(tmp_path_factory.mktemp("ops")) / "operations.db")
    yield s
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(STATUSES)), max_size=8), st.booleans())
def test_status_sequences(store: DispatchStore, statuses: list[str], refused_at_once: bool) -> None:
    rid = f"p{next(_ids)}"
    start = "refused" if refused_at_once else "received"
    store.record(
        request_id=rid,
        room_id="!r",
        sender="@o",
        command="exec",
        capability="shell.exec.ls",
        args={"argv": ["ls"]},
        now=T0,
        status=start,
    )
    current = start
    for n, status in enumerate(statuses, start=1):
        allowed = status in TRANSITIONS.get(current, frozenset())
        try:
            moved = store.set_status(rid, status, now=T0 + n)
        except FnError as exc:
            assert not allowed and exc.code == "dispatch_status_invalid"
            continue
        assert allowed
        current = status
        assert moved.status == status
    row = store.get(rid)
    assert row is not None and row.status == current
    # a final status is final, and only a final status has finished_at
    assert (row.finished_at is not None) == (current in FINAL)
    if row.decided_at is not None and row.finished_at is not None:
        assert row.decided_at <= row.finished_at
    if current in FINAL:
        for status in STATUSES:
            with pytest.raises(FnError):
                store.set_status(rid, status, now=T0 + 100)
