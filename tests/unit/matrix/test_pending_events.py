"""Events that arrived before their room key: tried again when a sync may have brought the
key (to-device messages) or every few seconds, not on every sync; decrypted ones are
dispatched once; after ten minutes they are dropped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nio
import pytest

from meshagents.matrix.client import sync as sync_mod
from meshagents.matrix.client.sync import Syncer
from meshagents.matrix.client.types import ClientConfig


class Client:
    """The one nio call the retry makes: decrypt, failing until the key is there."""

    def __init__(self) -> None:
        self.tries = 0
        self.key_here = False

    def decrypt_event(self, event: nio.MegolmEvent) -> nio.Event:
        self.tries += 1
        if not self.key_here:
            raise nio.EncryptionError("no session")
        return SimpleNamespace(event_id=event.event_id, room_id=None)


def _syncer(client: Client, handled: list[str]) -> Syncer:
    config = ClientConfig(
        homeserver="http://127.0.0.1:1", user_id="@a:hub.mesh", password="x", store_dir=Path("/x")
    )
    syncer = Syncer(config, SimpleNamespace(client=client), None, None)  # type: ignore[arg-type]

    async def handle(room_id: str, event: Any, *, dispatch: bool) -> None:
        handled.append(event.event_id)

    syncer._handle_event = handle  # type: ignore[method-assign]
    return syncer


def _wait(syncer: Syncer, event_id: str, since: float) -> None:
    event = SimpleNamespace(event_id=event_id, room_id=None)
    syncer._pending[event_id] = (since, "!r:hub.mesh", event, True)


def test_retried_when_keys_may_have_come_else_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    client, handled = Client(), list[str]()
    syncer = _syncer(client, handled)
    _wait(syncer, "$e", now[0])

    async def go() -> None:
        await syncer._retry_pending(keys_may_have_come=False)  # first time: tried
        assert client.tries == 1
        for _ in range(5):  # syncs without to-device messages, within the interval: not tried
            now[0] += 0.5
            await syncer._retry_pending(keys_may_have_come=False)
        assert client.tries == 1
        await syncer._retry_pending(keys_may_have_come=True)  # a sync with to-device messages
        assert client.tries == 2
        now[0] += sync_mod.PENDING_RETRY_S  # the interval passed: tried again anyway
        await syncer._retry_pending(keys_may_have_come=False)
        assert client.tries == 3 and handled == []
        client.key_here = True
        await syncer._retry_pending(keys_may_have_come=True)
        assert handled == ["$e"] and not syncer._pending
        await syncer._retry_pending(keys_may_have_come=True)  # nothing waits: nothing tried
        assert client.tries == 4 and handled == ["$e"]

    asyncio.run(go())


def test_dropped_after_ten_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [5000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    client, handled = Client(), list[str]()
    syncer = _syncer(client, handled)
    _wait(syncer, "$old", now[0] - sync_mod.PENDING_MAX_S - 1)
    _wait(syncer, "$new", now[0])
    asyncio.run(syncer._retry_pending(keys_may_have_come=True))
    assert list(syncer._pending) == ["$new"] and handled == []
