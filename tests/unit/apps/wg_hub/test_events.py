"""The event bus: fan-out, limits, slow subscribers dropped; the poller's change detection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshagents.apps.wg_hub import events
from meshagents.apps.wg_hub.events import EventBus, changes, poll_forever

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


# --- ids that grow across restarts, and resuming a stream with Last-Event-ID ---------------

async def _take(stream: Any, n: int) -> list[dict[str, Any]]:
    out = []
    async for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_ids_grow_across_restarts_and_a_stream_resumes_after_its_last_id(tmp_path: Any) -> None:
    from meshagents.apps.wg_hub.store import HubStore

    store = HubStore(tmp_path / "operations.db")
    first = EventBus()
    first.attach_journal(store, store.next_boot())
    first.bind(asyncio.get_running_loop())
    seen = first.publish("peer_added", {"device_id": "a"})["id"]
    first.publish("peer_stats", {"changed": []})  # periodic: not journaled
    missed = first.publish("peer_revoked", {"device_id": "a"})["id"]

    second = EventBus()  # the hub restarted
    second.attach_journal(store, store.next_boot())
    second.bind(asyncio.get_running_loop())
    assert second.publish("peer_added", {"device_id": "b"})["id"] > missed > seen

    stream = second.stream(after=seen)
    replayed = await asyncio.wait_for(_take(stream, 2), 2)
    got = [(e["type"], e["data"]["device_id"]) for e in replayed]
    assert got == [("peer_revoked", "a"), ("peer_added", "b")]
    later = asyncio.create_task(_take(stream, 1))
    await asyncio.sleep(0.05)
    second.publish("peer_removed", {"device_id": "b"})
    assert [e["type"] for e in await asyncio.wait_for(later, 2)] == ["peer_removed"]  # live, no repeats


async def test_a_reader_behind_the_journal_is_told_to_resync(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshagents.apps.wg_hub import store as store_mod

    monkeypatch.setattr(store_mod, "EVENT_JOURNAL_KEEP", 3)
    store = store_mod.HubStore(tmp_path / "operations.db")
    bus = EventBus()
    bus.attach_journal(store, store.next_boot())
    bus.bind(asyncio.get_running_loop())
    old = bus.publish("peer_added", {"device_id": "a"})["id"]
    for i in range(5):
        bus.publish("peer_added", {"device_id": f"d{i}"})
    (event,) = await asyncio.wait_for(_take(bus.stream(after=old), 1), 2)
    assert event["type"] == "resync"
    complete, rest = store.events_after(old + 2)  # d1, the newest dropped: nothing after it is lost
    assert complete and [e["data"]["device_id"] for e in rest] == ["d2", "d3", "d4"]


# --- the bot's side: what each event does to its directory ------------------------------------

async def test_the_directory_applies_pushed_events() -> None:
    from meshagents.apps.agents_and_robots.directory import HubDirectory, HubEvent

    class Hub:
        async def peers(self) -> list[dict[str, Any]]:
            return [{"name": "home", "status": "active", "latest_handshake": 1_800_000_000.0}]

        async def revoke(self, device: str) -> dict[str, Any]:
            return {}

    d = HubDirectory(Hub())
    await d.refresh()
    assert not d.apply_event(HubEvent("1", "peer_stats", {"changed": [
        {"name": "home", "latest_handshake": 1_800_000_100.0}]}))  # fmt: skip
    assert d.devices()["home"].last_handshake == 1_800_000_100.0
    assert not d.apply_event(HubEvent("2", "peer_revoked", {"device_id": "home"}))
    assert d.devices()["home"].revoked  # at once, before any re-read
    assert d.apply_event(HubEvent("3", "peer_added", {"device_id": "new"}))  # its manifest: re-read
    assert d.apply_event(HubEvent("4", "resync", {}))
