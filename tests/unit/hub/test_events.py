"""The event bus: fan-out, limits, slow subscribers dropped; the poller's change detection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apps.wg_hub import events
from apps.wg_hub.events import EventBus, changes, poll_forever

pytestmark = pytest.mark.unit


def test_changes_only_moved_peers() -> None:
    before = {"a": (1.0, 10, 10), "b": (None, 0, 0)}
    after = {"a": (1.0, 10, 10), "b": (5.0, 1, 1), "c": (None, 0, 0)}
    assert changes(before, after) == ["b", "c"]
    assert changes(after, after) == []


async def test_fanout_with_limit_and_threads() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    got: list[list[dict[str, Any]]] = [[], []]

    async def listen(i: int) -> None:
        async for ev in bus.stream(limit=2):
            got[i].append(ev)

    tasks = [asyncio.create_task(listen(i)) for i in range(2)]
    await asyncio.sleep(0)
    bus.publish("peer_added", {"device_id": "a"})
    await asyncio.to_thread(bus.publish, "peer_revoked", {"device_id": "a"})  # from a worker thread
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert [[e["type"] for e in g] for g in got] == [["peer_added", "peer_revoked"]] * 2
    assert bus.subscribers == 0


async def test_slow_subscriber_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "QUEUE_SIZE", 3)
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    stream = bus.stream()
    first = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0)
    for i in range(10):
        bus.publish("peer_stats", {"i": i})
    assert (await first)["data"] == {"i": 0}
    assert bus.subscribers == 0
    rest = [e async for e in stream]
    assert len(rest) <= 3


async def test_poller_publishes_deltas_while_listened() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    state = {"pk": (None, 0, 0)}
    reads = 0

    def read() -> tuple[dict[str, tuple[float | None, int, int]], dict[str, Any]]:
        nonlocal reads
        reads += 1
        return dict(state), {"pk": "dev"}

    poller = asyncio.create_task(poll_forever(bus, read, 0.01))
    await asyncio.sleep(0.05)
    assert reads == 0  # nobody listens: the interface is not read
    seen: list[dict[str, Any]] = []

    async def listen() -> None:
        async for ev in bus.stream(limit=3):
            seen.append(ev)
            state["pk"] = (1.0, 5, 5)

    await asyncio.wait_for(listen(), 2)
    poller.cancel()
    assert seen[0]["data"]["changed"][0]["name"] == "dev"
    assert any(e["data"]["changed"] == [] for e in seen[1:]) or len(seen) == 3
