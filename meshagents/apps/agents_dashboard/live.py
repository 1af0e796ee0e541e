"""The dashboard's live state: follows the hub's event stream and polls the bot, tells the pages.

    live = Live(cfg, hub, bot)
    task = asyncio.create_task(live.run())     # until cancelled
    await live.refresh_peers()                 # after an action (revoke) without waiting for events
    sub = live.subscribe(); await sub.wait() -> {"mesh", "approvals", ...}; live.unsubscribe(sub)

What it holds: the peers (``GET /api/peers`` at start and after every peer_added /
peer_removed / peer_revoked event; handshake and byte counters folded in from each
``peer_stats`` event), byte rates from successive samples, and the bot's approvals and
device states (``None`` while the bot cannot be reached, with the reason). Each change
marks the panels it affects on every subscriber; a subscriber that is slow just gets
the union of marks when it wakes, so nobody queues up stale renders.

When the hub stream breaks, the peers stay on screen marked "hub disconnected" and
the stream is retried with backoff (1 s up to 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from meshagents.apps.agents_dashboard.clients import BotClient, HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.views import RateTracker, apply_stats
from meshagents.errors import FnError
from meshagents.retry import Backoff

log = logging.getLogger("agents_dashboard")

PANELS = ("status", "mesh", "devices", "containers", "approvals", "audit")
TOPOLOGY = {"status", "mesh", "devices", "containers", "audit"}
TOPOLOGY_EVENTS = {"peer_added", "peer_removed", "peer_revoked"}


class Subscriber:
    def __init__(self) -> None:
        self.pending: set[str] = set(PANELS)  # a new page gets everything once
        self.event = asyncio.Event()
        self.event.set()

    def mark(self, panels: set[str]) -> None:
        self.pending |= panels
        self.event.set()

    async def wait(self) -> set[str]:
        await self.event.wait()
        self.event.clear()
        out, self.pending = self.pending, set()
        return out


class Live:
    def __init__(
        self,
        cfg: DashConfig,
        hub: HubClient,
        bot: BotClient | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.hub = hub
        self.bot = bot
        self.clock = clock
        self.peers: list[dict[str, Any]] = []
        self.rates = RateTracker()
        self.hub_state = "connecting"
        self.hub_error = ""
        self.hub_events = 0
        self.last_hub_event: float | None = None
        self.approvals: list[dict[str, Any]] | None = None
        self.bot_devices: list[dict[str, Any]] | None = None
        self.bot_state = "not configured" if bot is None else "connecting"
        self.bot_error = ""
        self.pending_identities: dict[str, str] = {}  # the bot's, see its /healthz
        self._subs: set[Subscriber] = set()
        self.versions: dict[str, int] = dict.fromkeys(PANELS, 0)  # bumped on every mark
        self._refresh_lock = asyncio.Lock()

    # subscribers -----------------------------------------------------------------------------
    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def notify(self, panels: set[str]) -> None:
        for p in panels:
            self.versions[p] = self.versions.get(p, 0) + 1
        for sub in list(self._subs):
            sub.mark(panels)

    # hub -------------------------------------------------------------------------------------
    async def refresh_peers(self) -> None:
        async with self._refresh_lock:
            peers = await self.hub.peers()
            now = self.clock()
            for p in peers:
                key = str(p.get("public_key") or "")
                self.rates.update(key, float(p.get("rx_bytes") or 0), float(p.get("tx_bytes") or 0), now)
            self.rates.forget(str(p.get("public_key") or "") for p in peers)
            self.peers = peers
        self.notify(TOPOLOGY)

    def handle(self, event: dict[str, Any]) -> bool:
        """Fold one hub event in; True when the peer list must be read again."""
        self.hub_events += 1
        self.last_hub_event = self.clock()
        kind = event.get("type")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        if kind in TOPOLOGY_EVENTS:
            return True
        if kind == "peer_stats":
            changed = data.get("changed") if isinstance(data.get("changed"), list) else []
            assert isinstance(changed, list)
            apply_stats(self.peers, changed)
            ts = data.get("polled_at")
            now = float(ts) if isinstance(ts, int | float) else self.clock()
            for p in self.peers:
                key = str(p.get("public_key") or "")
                self.rates.update(key, float(p.get("rx_bytes") or 0), float(p.get("tx_bytes") or 0), now)
            self.notify({"mesh"})
            # a peer the hub polls but we do not list (added while we reconnected): read again
            known = {p.get("public_key") for p in self.peers}
            return any(c.get("public_key") not in known for c in changed if isinstance(c, dict))
        return False

    async def follow_hub(self) -> None:
        backoff = Backoff(1.0, 10.0)
        while True:
            try:
                await self.refresh_peers()
                self._set_hub("live", "")
                backoff.reset()
                async for event in self.hub.events():
                    if self.handle(event):
                        await self.refresh_peers()
                raise FnError("hub_stream_ended", "the hub closed the event stream")
            except FnError as exc:
                self._set_hub("disconnected", exc.message)
                log.warning("hub events: %s (retry in %.0f s)", exc.message, backoff.delay)
            await backoff.sleep()

    def _set_hub(self, state: str, error: str) -> None:
        if (state, error) != (self.hub_state, self.hub_error):
            self.hub_state, self.hub_error = state, error
            self.notify({"status", "mesh"})

    # bot -------------------------------------------------------------------------------------
    async def poll_bot_once(self) -> None:
        if self.bot is None:
            return
        try:
            approvals = await self.bot.approvals()
            devices = await self.bot.devices()
        except FnError as exc:
            # unreachable: nothing answers; error: the bot answered but not with the contract's data
            state = "unreachable" if exc.code == "bot_unreachable" else "error"
            changed = self.bot_state != state or self.bot_error != exc.message
            self.bot_state, self.bot_error = state, f"{exc.code}: {exc.message}"
            self.approvals = self.bot_devices = None
            if changed:
                self.notify({"status", "approvals", "devices", "containers"})
            return
        panels: set[str] = set()
        if self.bot_state != "ok":
            self.bot_state, self.bot_error = "ok", ""
            panels |= {"status"}
        try:
            pending = (await self.bot.healthz()).get("pending_identities") or {}
        except FnError:
            pending = self.pending_identities
        if isinstance(pending, dict) and pending != self.pending_identities:
            self.pending_identities = {str(k): str(v) for k, v in pending.items()}
            panels |= {"status"}
        if approvals != self.approvals:
            self.approvals = approvals
            panels |= {"approvals"}
        if devices != self.bot_devices:
            self.bot_devices = devices
            panels |= {"devices", "containers"}
        if panels:
            self.notify(panels)

    async def poll_bot(self) -> None:
        while True:
            await self.poll_bot_once()
            await asyncio.sleep(self.cfg.bot_period_s)

    # ages tick even when nothing else moves ------------------------------------------------------
    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.tick_s)
            self.notify({"mesh", "approvals"})

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self.follow_hub()),
            asyncio.create_task(self.poll_bot()),
            asyncio.create_task(self.tick()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
