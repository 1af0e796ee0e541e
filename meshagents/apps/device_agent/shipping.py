"""Audit shipping to the hub: entries plus a device-signed checkpoint, in batches.

Contract (shared with the hub): ``POST {hub}/api/audit/{device_id}`` with
``{"entries": [AuditEntry dicts, contiguous, from the hub's head + 1],
"checkpoint": <Checkpoint signed by the device key, seq/head_hash = last entry's>}``;
``200 {"head_seq": N}``; ``409 {"error": "audit_chain_broken", "expected_seq": N}``;
re-sending what the hub has is idempotent.

    make_checkpoint(device_id, seq, head_hash, key, now=None) -> dict   # pure
    Shipper(config, audit, key_loader).batch() -> (entries, checkpoint) | None
    await shipper.ship_once(http) -> int      # entries the hub accepted (0: nothing to do)
    await shipper.run()                       # forever: ship, back off while the mesh is down

The shipped head lives in ``<data_dir>/shipped.json`` (written atomically after each
200), so a restart resumes where the hub is; on a 409 the hub's ``expected_seq`` wins
(the hub lost or never got a batch: we resend from there). Nothing is ever dropped:
entries stay in the local chain and are sent until the hub has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from nacl.signing import SigningKey

from meshagents.apps.device_agent.config import AgentConfig
from meshagents.fsutil import write_atomic
from meshagents.retry import Backoff
from meshagents.trust.audit import AuditLog
from meshagents.trust.checkpoints import sign_checkpoint

log = logging.getLogger("meshagents.device_agent.shipping")


def make_checkpoint(
    device_id: str, seq: int, head_hash: str, key: SigningKey, now: int | None = None
) -> dict[str, Any]:
    return sign_checkpoint(device_id, seq, head_hash, key, now)


class ShipRefused(Exception):
    """The hub answered something other than 200/409 (kept for the backoff loop)."""


class Shipper:
    def __init__(
        self,
        config: AgentConfig,
        audit: AuditLog,
        key_loader: Callable[[], SigningKey],
        *,
        batch_size: int = 500,
        interval_s: float = 5.0,
        backoff_max_s: float = 60.0,
        settle_s: float = 1.0,
    ) -> None:
        self.config = config
        self.audit = audit
        self._key_loader = key_loader
        self._key: SigningKey | None = None
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.backoff_max_s = backoff_max_s
        self.settle_s = settle_s
        self.nudge = asyncio.Event()
        self.last_error: str | None = None

    # ------------------------------------------------------------ shipped head
    def shipped_seq(self) -> int:
        try:
            data = json.loads(self.config.shipped_path.read_text(encoding="utf-8"))
            return int(data.get("seq", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return 0

    def _save(self, seq: int) -> None:
        path = self.config.shipped_path
        write_atomic(path, json.dumps({"seq": seq, "at": int(time.time())}), mode=0o666, fsync=False)

    # ------------------------------------------------------------ batches
    def batch(self) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        after = self.shipped_seq()
        entries = self.audit.entries_after(after, self.batch_size)
        if not entries:
            return None
        if self._key is None:
            self._key = self._key_loader()
        last = entries[-1]
        return entries, make_checkpoint(self.config.device_id, last["seq"], last["hash"], self._key)

    async def ship_once(self, http: httpx.AsyncClient, *, rewind: bool = True) -> int:
        """Send one batch; the number of entries the hub now has from it (0: nothing to send).

        On ``409`` the hub's ``expected_seq`` becomes the shipped head and the batch from
        there is sent at once (one rewind per call, so a confused hub cannot loop us).
        """
        if not self.config.hub_url:
            return 0
        got = self.batch()
        if got is None:
            return 0
        entries, checkpoint = got
        url = f"{self.config.hub_url}/api/audit/{self.config.device_id}"
        resp = await http.post(url, json={"entries": entries, "checkpoint": checkpoint})
        if resp.status_code == 200:
            head = resp.json().get("head_seq", checkpoint["seq"])
            self._save(int(head) if isinstance(head, int) else checkpoint["seq"])
            return len(entries)
        if resp.status_code == 409 and rewind:
            expected = resp.json().get("expected_seq")
            if isinstance(expected, int) and 1 <= expected <= checkpoint["seq"]:
                log.warning(
                    "hub expects audit seq %d (we had shipped up to %d); resending",
                    expected,
                    self.shipped_seq(),
                )
                self._save(expected - 1)
                return await self.ship_once(http, rewind=False)
        raise ShipRefused(f"hub answered {resp.status_code}: {resp.text[:200]}")

    async def run(self) -> None:
        """Ship forever; while the hub is unreachable, back off (doubling to ``backoff_max_s``)."""
        # the first wait after a failure is already twice the interval
        backoff = Backoff(min(self.interval_s * 2, self.backoff_max_s), self.backoff_max_s)
        async with httpx.AsyncClient(timeout=10.0) as http:
            while True:
                wait = self.interval_s
                try:
                    while await self.ship_once(http):
                        pass
                    self.last_error = None
                    backoff.reset()
                except (httpx.HTTPError, ShipRefused, ValueError) as exc:
                    if self.last_error is None:
                        log.warning("audit shipping failed (%s); retrying with backoff", exc)
                    self.last_error = str(exc)
                    wait = backoff.next()
                self.nudge.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.nudge.wait(), wait)
                if self.nudge.is_set():
                    # An answer was just sent: its homeserver still hands it to the room, on
                    # the hub's machine, where the hub would ingest this batch. Wait that out
                    # (and batch what comes meanwhile): audit rows reach the hub a second
                    # later, never on a command's path.
                    await asyncio.sleep(self.settle_s)
