"""The sync loop: long-poll, keep the crypto going, dispatch each new event once.

- **Never twice**: an event id is recorded in the handled table *before* its callback
  runs, so after a restart (or a crash) no event is handled again (at most once). On
  the very first sync of a new store, history is recorded, not dispatched
  (``handle_backlog`` dispatches it).
- Events whose room key has not arrived wait (ten minutes at most) for a later sync that
  may have brought it (to-device messages), or are tried again every few seconds.
- Identity statements are applied before any other event of the same sync.
- **Degraded**: while the homeserver does not answer, ``state`` is ``degraded`` and the
  loop retries with exponential backoff; it goes back to ``ok`` by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nio

from meshagents.errors import FnError
from meshagents.matrix import identity
from meshagents.matrix.client.backup import KeyBackup
from meshagents.matrix.client.cryptostore import CryptoStore
from meshagents.matrix.client.policy import TrustPolicy
from meshagents.matrix.client.session import NET_ERRORS, Session
from meshagents.matrix.client.types import Callback, ClientConfig, Incoming, State
from meshagents.retry import Backoff

log = logging.getLogger("meshagents.matrix")

#: How long an event waits for its room key before it is dropped.
PENDING_MAX_S = 600
#: Waiting events are tried again after a sync that brought to-device messages (a room key
#: comes as one), else at most this often (a key from elsewhere: a backup, an import). Not
#: on every sync: each try is a failed Megolm decryption and a logged error per event, and
#: a client with a few undecryptable events spent ~2 ms of every sync on them (py-spy).
PENDING_RETRY_S = 5.0


#: Matches every event type: a filter section that lets nothing through.
_NOTHING: dict[str, Any] = {"not_types": ["*"]}


def sync_filter(
    timeline_limit: int, *, ephemeral: bool = False, not_sender: str | None = None
) -> dict[str, Any]:
    """What our clients ask each sync for (pure): the rooms' timelines and state, and none
    of what no client of ours reads, which Synapse would otherwise gather, serialise and
    wake the long poll for on every sync: presence, account data (global and per room;
    what we read of it, secret storage and key backup, we fetch by its own API), and,
    unless ``ephemeral``, the rooms' typing notifications and read receipts. To-device
    messages, device-list changes and one-time-key counts (the crypto) are not filterable
    and stay.

    ``not_sender`` (our own user id) leaves that user's events out of the timelines: a
    long poll that only such an event woke stays waiting (Synapse skips a room whose
    filtered timeline is empty, and an empty sync does not answer), so a send no longer
    costs the sender a sync of its own echo. The state section stays whole, but a state
    event of ours reaches us only when some other event of that room comes with it in the
    same sync: only for a client that changes no room state after joining (its own join
    comes as a newly joined room's full state)."""
    timeline: dict[str, Any] = {"limit": timeline_limit}
    if not_sender is not None:
        timeline["not_senders"] = [not_sender]
    room: dict[str, Any] = {"timeline": timeline, "account_data": _NOTHING}
    if not ephemeral:
        room["ephemeral"] = _NOTHING
    return {"presence": _NOTHING, "account_data": _NOTHING, "room": room}


class SyncFailed(Exception):
    """The homeserver answered the sync with an error (e.g. a 502 from a proxy)."""


class Syncer:
    """Sync state and dispatch for one client; ``incoming`` turns an event into what a
    callback gets (it asks the trust policy)."""

    def __init__(
        self,
        config: ClientConfig,
        session: Session,
        policy: TrustPolicy,
        incoming: Callable[[str, nio.Event], Awaitable[Incoming]],
    ) -> None:
        self.config = config
        self.session = session
        self.policy = policy
        self.incoming = incoming
        self.state: State = "stopped"
        self.message_cbs: list[Callback] = []
        self.reaction_cbs: list[Callback] = []
        self.custom_cbs: dict[str, list[Callback]] = {}
        # Events whose room key has not arrived yet: id -> (since, room, event, dispatch).
        self._pending: dict[str, tuple[float, str, nio.MegolmEvent, bool]] = {}
        self._retried_at = 0.0  # monotonic
        self._synced = asyncio.Event()
        self.filter: str | dict[str, Any] | None = None
        self._backup = KeyBackup(config.key_backup_path) if config.key_backup_path else None

    async def loop(self) -> None:
        backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)
        while True:
            try:
                await self.sync_once(timeout_ms=self.config.sync_timeout_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive anything one sync can throw
                if not isinstance(exc, (*NET_ERRORS, SyncFailed)):
                    log.exception("%s: sync failed unexpectedly", self.config.user_id)
                elif self.state != "degraded":
                    log.warning("%s: homeserver unreachable (%s); degraded", self.config.user_id, exc)
                self.state = "degraded"
                await backoff.sleep()
                continue
            if self.state == "degraded":
                log.warning("%s: homeserver back; ok", self.config.user_id)
            self.state = "ok"
            backoff.reset()

    async def next_sync(self) -> None:
        await self._synced.wait()

    async def sync_once(self, timeout_ms: int, *, full_state: bool = False) -> None:
        client = self.session.client
        if self.filter is None:
            spec = sync_filter(
                self.config.timeline_limit,
                ephemeral=self.config.sync_ephemeral,
                not_sender=None if self.config.sync_own_events else self.config.user_id,
            )
            up = await client.upload_filter(**spec)
            # An uploaded filter spares the server parsing it on every long poll.
            self.filter = up.filter_id if isinstance(up, nio.UploadFilterResponse) else spec
        resp = await client.sync(timeout=timeout_ms, sync_filter=self.filter, full_state=full_state or None)
        if not isinstance(resp, nio.SyncResponse):
            raise SyncFailed(getattr(resp, "message", str(resp)))
        if client.outgoing_to_device_messages:
            await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        for user in resp.device_list.changed:
            self.policy.dirty.add(user)
        await self._handle_invites(resp)
        first, self.session.first_sync_ever = self.session.first_sync_ever, False
        # Identity statements first: a command in another room of this same sync must meet
        # the operator's confirmed identity, whatever order the rooms come in.
        for info in resp.rooms.join.values():
            for event in info.timeline.events:
                if event.source.get("type") == identity.IDENTITY_EVENT:
                    self.policy.accept_identity(event.source.get("content"))
        for room_id, info in resp.rooms.join.items():
            for event in info.timeline.events:
                await self._handle_event(room_id, event, dispatch=not first or self.config.handle_backlog)
        await self._retry_pending(keys_may_have_come=bool(resp.to_device_events))
        if isinstance(client.store, CryptoStore):
            client.store.flush_sync_token()  # handled: from now on a restart resumes after them
        if self._backup is not None:
            try:
                await self._backup.upload(self.session)
            except (*NET_ERRORS, FnError, KeyError, ValueError) as exc:
                log.warning("%s: key backup upload failed: %s", self.config.user_id, exc)
        # Wake waiters: set then replace, so each waiter sees exactly one sync.
        synced, self._synced = self._synced, asyncio.Event()
        synced.set()

    async def _handle_invites(self, resp: nio.SyncResponse) -> None:
        allowed = set(self.config.operators) | set(self.config.accept_invites_from)
        for room_id, info in resp.rooms.invite.items():
            inviter = None
            for ev in info.invite_state:
                if (
                    getattr(ev, "state_key", None) == self.config.user_id
                    and getattr(ev, "membership", "") == "invite"
                ):
                    inviter = ev.sender
            if inviter in allowed:
                await self.session.client.join(room_id)
            else:
                log.info("%s: ignoring invite to %s from %s", self.config.user_id, room_id, inviter)

    async def _retry_pending(self, *, keys_may_have_come: bool) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        if not keys_may_have_come and now - self._retried_at < PENDING_RETRY_S:
            return
        self._retried_at = now
        for event_id, (since, room_id, event, dispatch) in list(self._pending.items()):
            event.room_id = room_id
            try:
                decrypted = self.session.client.decrypt_event(event)
            except (nio.EncryptionError, nio.LocalProtocolError):
                if now - since > PENDING_MAX_S:
                    del self._pending[event_id]
                continue
            del self._pending[event_id]
            decrypted.room_id = room_id
            await self._handle_event(room_id, decrypted, dispatch=dispatch)

    async def _handle_event(self, room_id: str, event: nio.Event, *, dispatch: bool) -> None:
        handled = self.session.handled
        assert handled is not None
        event_id = getattr(event, "event_id", None)
        if not event_id or handled.seen(event_id):
            return
        if isinstance(event, nio.MegolmEvent):
            # No room key yet: it may arrive with a later sync.
            self._pending.setdefault(event_id, (time.monotonic(), room_id, event, dispatch))
            return
        handled.mark(event_id, room_id)
        source = event.source
        etype = str(source.get("type", ""))
        if etype == identity.IDENTITY_EVENT:
            # self-verifying (operator key): applied from the backlog too, never dispatched twice
            self.policy.accept_identity(source.get("content"))
        if not dispatch or event.sender == self.config.user_id:
            return
        if etype == "m.room.message":
            callbacks = self.message_cbs
        elif etype == "m.reaction":
            callbacks = self.reaction_cbs
        else:
            callbacks = self.custom_cbs.get(etype, [])
        if not callbacks:
            return
        incoming = await self.incoming(room_id, event)
        for cb in callbacks:
            try:
                await cb(incoming)
            except Exception:
                log.exception("%s: callback for %s failed", self.config.user_id, etype)
