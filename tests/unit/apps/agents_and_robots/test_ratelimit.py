"""Per-sender token buckets (pure) and the bot core's one clear reply when a sender floods."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.core import BotCore, Reply
from meshagents.apps.agents_and_robots.ratelimit import RateLimiter
from tests.unit.apps.agents_and_robots.test_core import DEVICES, OP, T0, msg

pytestmark = pytest.mark.unit


def test_burst_then_refill() -> None:
    lim = RateLimiter(per_minute=60, burst=3)
    assert [lim.take("a", 0.0).allowed for _ in range(3)] == [True, True, True]
    d = lim.take("a", 0.0)
    assert not d.allowed and d.first_refusal and d.retry_after_s == pytest.approx(1.0)
    again = lim.take("a", 0.5)
    assert not again.allowed and not again.first_refusal  # answered once per run of refusals
    assert lim.take("b", 0.5).allowed  # per sender
    assert lim.take("a", 1.0).allowed
    assert lim.take("a", 1.0).first_refusal  # a new run of refusals after an accepted command


def test_forget_and_bounded_keys() -> None:
    lim = RateLimiter(per_minute=60, burst=2, max_keys=3)
    for k in "abcd":
        lim.take(k, 0.0)
    assert len(lim) == 3  # the oldest went
    assert lim.forget(0.5) == 0 and lim.forget(10.0) == 3 and len(lim) == 0
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0)


@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=200), st.integers(1, 20),
       st.floats(1, 600, allow_nan=False))
def test_never_more_than_burst_plus_refill(times: list[float], burst: int, per_minute: float) -> None:
    lim = RateLimiter(per_minute=per_minute, burst=burst)
    ts = sorted(times)
    allowed = sum(lim.take("k", t).allowed for t in ts)
    assert allowed <= burst + (ts[-1] - ts[0]) * per_minute / 60 + 1e-6


def test_core_replies_once_then_drops() -> None:
    core = BotCore(bot_user_id="@bot:hub", approvals_room_id="!appr:hub",
                   limiter=RateLimiter(per_minute=1, burst=2))
    first = [core.on_message(msg("!help", ev=f"$e{i}"), DEVICES) for i in range(2)]
    assert all(out and not any("rate_limited" in getattr(a, "text", "") for a in out) for out in first)
    limited = core.on_message(msg("!help", ev="$e3"), DEVICES)
    assert len(limited) == 1 and isinstance(limited[0], Reply)
    assert limited[0].text.startswith(f"rate_limited: too many commands from {OP}; nothing was run")
    assert core.on_message(msg("!exec ls /tmp", ev="$e4"), DEVICES) == []  # silence, nothing dispatched
    assert core.on_message(msg("!help", ev="$e5", at=T0 + 61), DEVICES)  # refilled
