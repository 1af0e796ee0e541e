"""The events of a room between two events, decrypted and judged (the device agent's
look for a 👎 / ``!deny`` or a second request before an approval).

API::

    evs = await events_between(client, room, first_id, last_id, limit=500, timeout=5.0)
        -> list[dict] | None   # {"event_id","type","sender","content","origin_server_ts","verified"}

Room order (``/context`` on ``first_id``, then ``/messages`` forwards), ``first_id``
and ``last_id`` themselves left out. ``None`` when ``last_id`` is not reached within
``limit`` events (it does not follow ``first_id``, or the gap is too long to judge) or
the server cannot be read: the caller refuses, it never guesses. An event that stays
encrypted past ``timeout`` comes back with its ciphertext content and
``verified=False``, which no rule counts as a vote.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nio

from meshagents.errors import FnError
from meshagents.matrix.client import MatrixClient
from meshagents.matrix.fetch import _verdict

PAGE = 100


async def _plain(client: MatrixClient, room_id: str, event: Any, deadline: float) -> dict[str, Any]:
    nio_client = client.nio_client
    while isinstance(event, nio.MegolmEvent) and time.monotonic() < deadline:
        try:
            event = nio_client.decrypt_event(event)
        except (nio.EncryptionError, nio.LocalProtocolError):
            await asyncio.sleep(0.2)
    source = event.source if isinstance(getattr(event, "source", None), dict) else {}
    decrypted = bool(getattr(event, "decrypted", False)) and not isinstance(event, nio.MegolmEvent)
    verified = False
    if decrypted:
        event.room_id = room_id
        verified, _ = await _verdict(client, room_id, event)
    return {
        "event_id": str(source.get("event_id", getattr(event, "event_id", ""))),
        "type": str(source.get("type", "")),
        "sender": str(source.get("sender", getattr(event, "sender", ""))),
        "content": dict(source.get("content", {})) if isinstance(source.get("content"), dict) else {},
        "origin_server_ts": source.get("origin_server_ts"),
        "verified": verified,
    }


async def events_between(
    client: MatrixClient,
    room: str,
    first_id: str,
    last_id: str,
    *,
    limit: int = 500,
    timeout: float = 5.0,
) -> list[dict[str, Any]] | None:
    """Every event after ``first_id`` and before ``last_id``; see the module doc."""
    room_id = await client.resolve(room)
    nio_client = client.nio_client
    deadline = time.monotonic() + timeout
    try:
        ctx = await nio_client.room_context(room_id, first_id, limit=2)
        if not isinstance(ctx, nio.RoomContextResponse):
            return None
        out: list[dict[str, Any]] = []
        batch: list[Any] = list(ctx.events_after)
        token = ctx.end
        while True:
            for ev in batch:
                if getattr(ev, "event_id", None) == last_id:
                    return out
                out.append(await _plain(client, room_id, ev, deadline))
                if len(out) > limit:
                    return None
            if token is None:
                return None
            resp = await nio_client.room_messages(
                room_id, start=token, direction=nio.MessageDirection.front, limit=PAGE
            )
            if not isinstance(resp, nio.RoomMessagesResponse) or not resp.chunk:
                return None
            batch, token = list(resp.chunk), resp.end
    except (TimeoutError, OSError) as exc:
        raise FnError("homeserver_unreachable", f"cannot read {room_id}: {exc}") from exc
