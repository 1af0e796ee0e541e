"""Fetch one event by id from a room, decrypt it, and judge its sender, on a started
:class:`~meshagents.matrix.client.MatrixClient` (the device agent's approval look-up).

API::

    ev = await fetch_event(client, room, event_id, timeout=5.0) -> FetchedEvent | None
    FetchedEvent(event_id, room_id, type, sender, content, decrypted, verified, sender_device)
    ev.as_bus_dict() -> {"event_id", "type", "sender", "content", "origin_server_ts"}

``None`` when the server does not have the event in that room (or we may not see it).
An encrypted event whose room key has not arrived yet is retried on each sync until
``timeout``; it then comes back with ``decrypted=False, verified=False`` and the
ciphertext's content, which no check will accept. ``verified`` is the client base's
trust policy (decrypted from an operator's device cross-signed by its pinned master
key, session not forwarded); the sender's keys are refreshed once when stale, through
the client's own evaluation step (``MatrixClient._evaluate``, used here rather than
adding a method to client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import nio

from meshagents.errors import FnError
from meshagents.matrix.client import MatrixClient


@dataclass(frozen=True)
class FetchedEvent:
    event_id: str
    room_id: str
    type: str
    sender: str
    content: dict[str, Any]
    decrypted: bool
    verified: bool
    sender_device: str | None = None
    origin_server_ts: int | None = None

    def as_bus_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "type": self.type, "sender": self.sender, "content": self.content,
                "origin_server_ts": self.origin_server_ts}


async def _verdict(client: MatrixClient, room_id: str, event: nio.Event) -> tuple[bool, str | None]:
    evaluate = getattr(client, "_evaluate", None)
    if evaluate is not None:
        verdict = await evaluate(room_id, event)
        return bool(verdict.verified), verdict.device_id
    return client.is_verified_sender(event), None


async def fetch_event(
    client: MatrixClient, room: str, event_id: str, *, timeout: float = 5.0
) -> FetchedEvent | None:
    """The event ``event_id`` of ``room`` (id or alias), decrypted and judged; see the module doc."""
    room_id = await client.resolve(room)
    nio_client = client.nio_client
    try:
        resp = await nio_client.room_get_event(room_id, event_id)
    except (TimeoutError, OSError) as exc:
        raise FnError("homeserver_unreachable", f"cannot fetch {event_id}: {exc}") from exc
    if not isinstance(resp, nio.RoomGetEventResponse):
        return None
    event: nio.Event = resp.event
    deadline = time.monotonic() + timeout
    while isinstance(event, nio.MegolmEvent):
        try:
            decrypted = nio_client.decrypt_event(event)
        except (nio.EncryptionError, nio.LocalProtocolError):
            if time.monotonic() >= deadline:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.sleep(0.2)
            continue
        decrypted.room_id = room_id
        event = decrypted
    source = event.source if isinstance(event.source, dict) else {}
    etype = str(source.get("type", ""))
    decrypted_ok = bool(getattr(event, "decrypted", False)) and not isinstance(event, nio.MegolmEvent)
    event.room_id = room_id
    verified, device = (False, None)
    if decrypted_ok:
        verified, device = await _verdict(client, room_id, event)
    return FetchedEvent(
        event_id=event_id,
        room_id=room_id,
        type=etype,
        sender=str(getattr(event, "sender", source.get("sender", ""))),
        content=dict(source.get("content", {})),
        decrypted=decrypted_ok,
        verified=verified,
        sender_device=device,
        origin_server_ts=ts if isinstance(ts := source.get("origin_server_ts"), int) else None,
    )
