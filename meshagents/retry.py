"""Exponential backoff, the one helper every retry loop uses.

The loops that retry (the Matrix sync and start, the agent's start and replies, audit
shipping, the dashboard's hub stream) differ in what they wait on — a plain sleep, a
stop request, a nudge — so the helper only keeps the delay; the loop decides how to
wait. (tenacity and stamina wrap a call, not a loop that waits on an event.)::

    backoff = Backoff(0.25, 30.0)
    while True:
        try:
            await step()
            backoff.reset()
        except Unreachable:
            await backoff.sleep()           # 0.25, 0.5, 1, ... 30, 30 s
            # or: await asyncio.wait_for(stop.wait(), backoff.next())
"""

from __future__ import annotations

import asyncio


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``; ``reset`` after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = initial

    def next(self) -> float:
        """The delay to wait now; the one after it is doubled (capped)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.delay = self.initial

    async def sleep(self) -> None:
        await asyncio.sleep(self.next())
