"""Live output (pure parts): the edit throttle, the m.replace shape, the running text,
and the running request's cancel switch."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.apps.device_agent import live
from meshagents.bus import LIVE_KEY

pytestmark = pytest.mark.unit


def test_throttle_allows_one_send_per_interval() -> None:
    t = live.Throttle(1.0)
    assert t.wait_s(10.0) == 0.0
    t.sent(10.0)
    assert t.wait_s(10.2) == pytest.approx(0.8) and t.wait_s(11.0) == 0.0 and t.wait_s(12.5) == 0.0


@given(st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=50))
def test_sending_only_when_allowed_keeps_a_second_between_sends(steps: list[float]) -> None:
    t, now, sent = live.Throttle(1.0), 0.0, []
    for step in steps:
        now += step
        if t.wait_s(now) == 0.0:
            t.sent(now)
            sent.append(now)
    assert all(b - a >= 1.0 for a, b in pairwise(sent))


def test_edit_is_an_m_replace_with_new_content() -> None:
    content = live.edit_content("$live", "final", "<p>final</p>", "req-1", "final")
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$live"}
    assert content["body"] == "* final" and content["formatted_body"] == "* <p>final</p>"
    new = content["m.new_content"]
    assert new["body"] == "final" and new["msgtype"] == "m.notice" and "m.relates_to" not in new
    assert new[LIVE_KEY] == content[LIVE_KEY] == {"request_id": "req-1", "state": "final"}
    first = live.live_content("b", "<p>b</p>", "$cmd", "req-1")
    assert first["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    assert first[LIVE_KEY]["state"] == "running"


def test_running_text_shows_the_tail_and_how_to_cancel() -> None:
    body, html = live.running_text("shell.exec.sh", "req-1", "a" * 5000 + "END<x>\n", 3.7, limit=100)
    assert body.startswith("⏳ shell.exec.sh (request req-1) running for 3 s — !cancel req-1")
    assert "END<x>" in body and "a" * 200 not in body and "…" in body
    assert "END&lt;x&gt;" in html and "<x>" not in html
    body, _ = live.running_text("x", "r", "", 0)
    assert "```" not in body


async def test_cancel_before_and_after_the_process_starts() -> None:
    loop = asyncio.get_running_loop()
    killed: list[int] = []
    run = live.Running("r", "shell.exec.sh", None, 0.0, loop)
    assert run.cancel("stop-1") and run.cancelled_by == "stop-1" and killed == []
    run.on_start(lambda: killed.append(1))  # the process came up after the cancel: killed at once
    assert killed == [1]
    run.feed(b"tick\n")
    await asyncio.sleep(0)
    assert run.changed.is_set() and run.text() == "tick\n" and run.version == 1
    write = live.Running("w", "fs.write", None, 0.0, loop, cancellable=False)
    assert not write.cancel("stop-2") and write.cancelled_by is None
