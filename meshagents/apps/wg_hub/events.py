"""Live events for the operator: an in-process fan-out bus and the handshake/bytes poller.

    bus = EventBus(); bus.bind(loop)
    bus.publish("peer_revoked", {...})        # from any thread
    async for event in bus.stream(limit=None): ...   # one subscriber
    await poll_forever(bus, read_stats, period_s)    # "peer_stats" every period while someone listens

Event: ``{"id": n, "type": str, "ts": unix seconds (float), "data": {...}}``. Ids grow
across restarts (``boot * EVENT_ID_SPAN + n``, the boot counted in the hub's store);
every event but ``peer_stats`` is journaled there, so a subscriber that reconnects with
``Last-Event-ID`` gets what it missed first — or, when the journal no longer reaches that
far back, one ``resync`` event (re-read ``GET /api/peers``). Types:
``peer_added``, ``peer_removed``, ``peer_revoked`` (published by the operations), and
``peer_stats`` (the poller: peers whose handshake time or byte counters changed since
the last poll — the first poll a subscriber sees after start lists all — plus counts).
Only changes travel, so at 10,000 mostly idle peers an update stays small. The poller
reads the interface only while at least one subscriber is connected.

A slow subscriber whose queue fills is dropped (its stream ends); it reconnects and
reads ``GET /api/peers`` for the full state. Nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

log = logging.getLogger("wg_hub")

QUEUE_SIZE = 1000
EVENT_ID_SPAN = 10**12  # ids of one boot: boot * SPAN + 1, + 2, ...
_CLOSED: dict[str, Any] = {"type": "_closed"}
#: Periodic and derivable: not journaled, not replayed (the next one follows within a period).
UNJOURNALED = frozenset({"peer_stats"})


class Journal(Protocol):
    def journal_event(self, event: dict[str, Any]) -> None: ...

    def events_after(self, after: int) -> tuple[bool, list[dict[str, Any]]]: ...

Stats = dict[str, tuple[float | None, int, int]]  # public key -> (handshake, rx, tx)


class EventBus:
    def __init__(self, journal: Journal | None = None, boot: int = 0) -> None:
        self._subs: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(boot * EVENT_ID_SPAN + 1)
        self._journal = journal
        self._id_lock = threading.Lock()  # publish() runs on the loop and in worker threads

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def attach_journal(self, journal: Journal, boot: int) -> None:
        """Journal events from now on, with ids of this boot (set before the first publish)."""
        with self._id_lock:
            self._journal = journal
            self._ids = itertools.count(boot * EVENT_ID_SPAN + 1)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        with self._id_lock:
            event = {"id": next(self._ids), "type": kind, "ts": time.time(), "data": data}
            if self._journal is not None and kind not in UNJOURNALED:
                try:  # journaled before anyone sees it: a resumed stream never misses it
                    self._journal.journal_event(event)
                except Exception as exc:  # the live stream still carries it
                    log.error("event journal write failed: %s", exc)
        loop = self._loop
        if loop is None or loop.is_closed():
            return event
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fanout(event)
        else:
            loop.call_soon_threadsafe(self._fanout, event)
        return event

    def _fanout(self, event: dict[str, Any]) -> None:
        for q in list(self._subs):
            if q.qsize() >= QUEUE_SIZE:  # one slot stays free for the end marker
                self._subs.discard(q)
                q.put_nowait(_CLOSED)
                log.warning("dropped a slow event subscriber")
            else:
                q.put_nowait(event)

    async def stream(
        self, limit: int | None = None, after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Live events; with ``after`` (a Last-Event-ID) the journaled ones after it come first."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE + 1)
        self._subs.add(q)  # subscribed before the replay is read: nothing falls in between
        sent = 0
        seen = after or 0
        try:
            if after is not None and self._journal is not None:
                complete, missed = await asyncio.to_thread(self._journal.events_after, after)
                if not complete:
                    missed = [{"id": seen, "type": "resync", "ts": time.time(),
                               "data": {"reason": "journal_trimmed"}}]  # fmt: skip
                for event in missed:
                    if limit is not None and sent >= limit:
                        return
                    yield event
                    sent += 1
                    seen = max(seen, int(event["id"]))
            while limit is None or sent < limit:
                event = await q.get()
                if event is _CLOSED:
                    return
                if int(event["id"]) <= seen:  # already replayed from the journal
                    continue
                yield event
                sent += 1
        finally:
            self._subs.discard(q)


def changes(before: Stats, after: Stats) -> list[str]:
    """Public keys whose handshake or counters moved (or that appeared)."""
    return [k for k, v in after.items() if before.get(k) != v]


async def poll_forever(
    bus: EventBus, read: Callable[[], tuple[Stats, dict[str, Any]]], period_s: float
) -> None:
    """Publish ``peer_stats`` every ``period_s`` while someone listens. ``read`` runs in a thread."""
    last: Stats = {}
    while True:
        await asyncio.sleep(period_s)
        if bus.subscribers == 0:
            last = {}  # a new listener gets the full picture first
            continue
        try:
            stats, meta = await asyncio.to_thread(read)
        except Exception as exc:  # the interface can be gone for a moment; keep polling
            log.error("peer stats poll failed: %s", exc)
            continue
        moved = changes(last, stats)
        last = stats
        peers = [
            {"public_key": k, "name": meta.get(k), "latest_handshake": stats[k][0], "rx_bytes": stats[k][1],
             "tx_bytes": stats[k][2]}
            for k in moved
        ]  # fmt: skip
        online = sum(1 for hs, _, _ in stats.values() if hs is not None and time.time() - hs < 180)
        bus.publish(
            "peer_stats",
            {"peer_count": len(stats), "online_count": online, "changed": peers, "polled_at": time.time()},
        )
