"""Stage stamps (meshagents.trace): off writes nothing; on, the waterfall joins the bot's ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshagents import trace

pytestmark = pytest.mark.unit


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    trace.enable(None)


def test_off_writes_nothing(tmp_path: Path, restore: None) -> None:
    trace.enable(None)
    assert not trace.enabled()
    trace.stamp("bot.received", "$ev")
    assert list(tmp_path.iterdir()) == []


STAGES = ("op.send", "bot.received", "bot.decided", "agent.received", "op.reply")


def test_stamps_join_event_ids_to_the_request_id(
    tmp_path: Path, restore: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.jsonl"
    monkeypatch.delenv(trace.ENV, raising=False)
    trace.enable(path)
    clock = iter(range(0, 10**9, 10**6))  # one ms per stamp
    monkeypatch.setattr(trace.time, "time_ns", lambda: next(clock))
    trace.stamp("op.send", "$ev1")
    trace.stamp("bot.received", "$ev1")
    trace.stamp("bot.decided", "req-1", event="$ev1")
    trace.stamp("agent.received", "req-1")
    trace.stamp("op.reply", "$ev1")
    trace.stamp("ignored", None)  # no id: nothing written
    with path.open("a") as fh:
        fh.write('{"torn": ')  # a torn last line is skipped
    records = trace.read(path)
    assert tuple(r["stage"] for r in records) == STAGES
    assert json.loads(path.read_text().splitlines()[2])["event"] == "$ev1"
    reqs = trace.by_request(records)
    assert set(reqs) == {"req-1"}
    rows = dict(trace.waterfall(records, STAGES))
    assert rows["total"] == [0.004]
    assert rows["bot.decided"] == [0.001] and rows["op.reply"] == [0.001]
    assert any("op.reply" in line for line in trace.report(records, [0.002]))
