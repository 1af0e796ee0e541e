"""The Matrix client base shared by the bot and the device agent (matrix-nio, E2EE).

API (everything else in this module is private)::

    cfg = ClientConfig(homeserver="http://127.0.0.1:8008", user_id="@bot:hub",
                       password="...", store_dir=Path(".../bot-store"),
                       operators=("@alice:hub",))
    client = MatrixClient(cfg)
    client.on_message(cb)                  # async cb(ev: Incoming) -> None   (m.room.message)
    client.on_reaction(cb)                 # async cb(ev: Incoming) -> None   (m.reaction)
    client.on_custom_event("org.x.t", cb)  # async cb(ev: Incoming) -> None   (any other type)
    await client.start()                   # login/restore, cross-sign self, first sync, loop
                                           # (start(wait=True): retry while unreachable)
    client.state                           # "stopped" | "starting" | "ok" | "degraded"
    await client.send_text(room, body, html=None, reply_to=None, encrypted=True)    -> event id
    await client.send_notice(room, body, html=None, reply_to=None, encrypted=True)  -> event id
    await client.send_custom(room, type, content)                   -> event id
    await client.send_reaction(room, event_id, key, encrypted=True) -> event id
    await client.create_room(alias=None, name=None, invite=(), power_levels=None) -> room id
    await client.join(room_id_or_alias)    -> room id
    await client.resolve(room_id_or_alias) -> room id
    await client.wait_for_member(room_id, user_id, timeout=10)
    await client.get_event(room, event_id)  -> Incoming  (fetched, decrypted, judged)
    await client.kick(room, user_id, reason=None)
    client.is_verified_sender(event)       -> bool   (the trust policy, see below)
    await client.stop()

``room`` is a room id (``!x:hs``) or an alias (``#x:hs``). Sends go encrypted in
encrypted rooms. Callbacks run inside the sync loop, one at a time: keep them short
or hand work to a task. A callback's exception is logged and does not stop the loop.
Inside a callback, sending to the event's room is fine, but anything that waits for a
*later* sync (``wait_for_member``, sending to a room not joined yet) must run in a task,
or it waits for the very loop it blocks (and fails after its timeout). Invites are
accepted from ``operators`` and ``accept_invites_from`` only.

Guarantees:
- **Never twice**: the nio store keeps the sync token and a small table keeps the ids
  of handled events; an event id is recorded *before* its callback runs, so after a
  restart (or a crash) no event is handled again (at most once). On the very first
  sync of a new store, history is recorded but not dispatched (``handle_backlog``).
- **Self cross-signing**: master / self-signing / user-signing seeds are created once,
  kept 0600 in ``store_dir/cross_signing.json`` (or ``cross_signing_path``, shared by
  all devices of one account) and never regenerated; the client uploads them (password
  auth when the server asks) and signs its own device.
- **Trust policy**: an event counts as verified only when it was decrypted, the
  inbound session came straight from the sender (no forwarding chain), the sending
  device (found by its curve25519 key in ``/keys/query``) holds the session's ed25519
  key, the device is signed by its owner's self-signing key, that key is signed by the
  owner's master key, the owner is in ``operators``, and the owner's master key equals
  the pinned one (``pinned_master_keys``, else pinned on first sight in
  ``store_dir/pins.json``; a change is logged, refused and listed in
  ``pending_identities`` until an ``org.meshagents.matrix_identity`` statement signed by
  an operator key (``identity_keys``) names the new key; it is then pinned in
  ``store_dir/identities.json``, at once, no restart). The chain is checked here
  with PyNaCl, not taken from the server. Devices that pass are marked verified in
  nio; with ``exclude_insecure_devices`` devices that are not cross-signed are
  blacklisted (no room keys for them), as Element does (MSC4153).
- **Degraded**: while the homeserver does not answer, ``state`` is ``degraded`` and
  the loop retries with exponential backoff; it goes back to ``ok`` by itself.
  ``start()`` itself needs the homeserver (login and cross-signing); it raises
  ``FnError("homeserver_unreachable")`` otherwise, or with ``wait=True`` retries.
- **Revoked session**: a saved token the server refuses makes ``start()`` retire the
  crypto store and log in as a new device, cross-signed with the same seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import nio
from nio.api import Api

from meshagents.errors import FnError
from meshagents.fsutil import read_json, write_private
from meshagents.matrix import crosssign, identity, secretstore
from meshagents.matrix.rooms import encryption_state, message_content
from meshagents.matrix.store import HandledEvents

log = logging.getLogger("meshagents.matrix")

State = Literal["stopped", "starting", "ok", "degraded"]

_NET_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs; one store directory per (user, device)."""

    homeserver: str
    user_id: str
    password: str
    store_dir: Path
    #: Users whose verified devices may command us (operators).
    operators: tuple[str, ...] = ()
    device_name: str = "meshagents"
    #: Operator master keys known out of band; others are pinned on first sight.
    pinned_master_keys: Mapping[str, str] = field(default_factory=dict)
    #: Blacklist devices their owner has not cross-signed (no room keys for them).
    exclude_insecure_devices: bool = True
    #: Accept invites from operators and from these users.
    accept_invites_from: tuple[str, ...] = ()
    #: Dispatch the history seen by the first sync of a brand-new store.
    handle_backlog: bool = False
    #: Where the cross-signing seeds live; default ``store_dir/cross_signing.json``. All
    #: devices (stores) of one account must share this file, or each resets the identity.
    cross_signing_path: Path | None = None
    #: Events per room a sync may carry: what queued up while we were away (older ones
    #: beyond this are skipped, never run late).
    timeline_limit: int = 100
    sync_timeout_ms: int = 30_000
    backoff_initial: float = 0.25
    backoff_max: float = 30.0
    #: Operator ed25519 public keys (called on each use, so rotations apply) whose signed
    #: ``org.meshagents.matrix_identity`` statements confirm a new master key of an
    #: operator (meshagents.matrix.identity). None: no confirmation possible.
    identity_keys: Callable[[], Sequence[str]] | None = None
    #: When the server's master key is not the one of our seeds (the identity was reset
    #: elsewhere, e.g. in Element): called (in a thread) for the account's current seeds,
    #: which are then saved over ``cross_signing_path``. None: replace the server's
    #: identity with ours (bot and agents own their accounts). Raising refuses to start.
    adopt_identity: Callable[[], crosssign.CrossSigningSeeds] | None = None
    #: The key-backup private key (``megolm_backup.json``, meshagents.matrix.recovery):
    #: upload the room keys we hold to the server's key backup, so a session verified
    #: later (Element) reads what this client received. None: no upload.
    key_backup_path: Path | None = None


@dataclass(frozen=True)
class Incoming:
    """One event handed to a callback."""

    room_id: str
    event_id: str
    sender: str
    type: str
    content: dict[str, Any]
    decrypted: bool
    verified: bool  # the trust policy's verdict, see the module docstring
    sender_device: str | None
    event: nio.Event
    #: Why ``verified`` is what it is: "ok" or the trust policy's reason, e.g.
    #: "device_not_cross_signed" (an unverified session), "master_key_changed" (an
    #: identity reset not confirmed by the operator key), "not_an_operator".
    trust: str = "ok"

    @property
    def body(self) -> str | None:
        body = self.content.get("body")
        return body if isinstance(body, str) else None

    @property
    def relates_to(self) -> str | None:
        rel = self.content.get("m.relates_to")
        return rel.get("event_id") if isinstance(rel, dict) else None

    @property
    def reaction_key(self) -> str | None:
        rel = self.content.get("m.relates_to")
        return rel.get("key") if isinstance(rel, dict) else None


Callback = Callable[[Incoming], Awaitable[None]]


@dataclass(frozen=True)
class _Verdict:
    verified: bool
    device_id: str | None
    reason: str


class MatrixClient:
    """An E2EE Matrix client that cross-signs itself and applies the trust policy."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._state: State = "stopped"
        self._nio: nio.AsyncClient | None = None
        self._handled: HandledEvents | None = None
        self._seeds: crosssign.CrossSigningSeeds | None = None
        self._task: asyncio.Task[None] | None = None
        self._message_cbs: list[Callback] = []
        self._reaction_cbs: list[Callback] = []
        self._custom_cbs: dict[str, list[Callback]] = {}
        self._keys: dict[str, dict[str, Any]] = {}  # user -> their /keys/query slice
        self._dirty: set[str] = set()  # users whose device list changed
        self._trusted: dict[tuple[str, str], bool] = {}  # (user, device) -> policy applied
        self._verdicts: OrderedDict[str, _Verdict] = OrderedDict()
        # Events whose room key has not arrived yet: id -> (since, room, event, dispatch).
        self._pending: dict[str, tuple[float, str, nio.MegolmEvent, bool]] = {}
        self._synced = asyncio.Event()
        self._first_sync_ever = False
        self._device_id: str | None = None
        self._pins: dict[str, str] | None = None
        self._chain_cache: dict[tuple[str, str, str | None], crosssign.ChainResult] = {}
        self._filter: str | dict[str, Any] | None = None
        self.trust_alerts: list[str] = []
        #: Operators whose master key changed and is not confirmed yet: user -> new master key.
        self.pending_identities: dict[str, str] = {}
        self._confirmed: dict[str, dict[str, Any]] | None = None
        self._backed_up: set[tuple[str, str]] = set()  # (room, session id) in the key backup
        self._backup: tuple[str, str] | None = None  # (version, public key) we can write to
        self._backup_checked = 0.0

    # ------------------------------------------------------------------ public
    @property
    def state(self) -> State:
        return self._state

    @property
    def user_id(self) -> str:
        return self.config.user_id

    @property
    def device_id(self) -> str:
        """Our device id (kept after ``stop()``)."""
        if self._device_id is None:
            raise FnError("matrix_not_started", "the Matrix client was never started")
        return self._device_id

    @property
    def nio_client(self) -> nio.AsyncClient:
        """The underlying nio client (for tests and advanced use)."""
        return self._client

    def on_message(self, callback: Callback) -> None:
        self._message_cbs.append(callback)

    def on_reaction(self, callback: Callback) -> None:
        self._reaction_cbs.append(callback)

    def on_custom_event(self, event_type: str, callback: Callback) -> None:
        self._custom_cbs.setdefault(event_type, []).append(callback)

    async def start(self, *, wait: bool = False) -> None:
        """Log in or restore, cross-sign, first sync, then run the sync loop in a task.

        With ``wait=True`` an unreachable homeserver is retried with backoff (state
        ``degraded`` meanwhile) instead of raising ``homeserver_unreachable``.
        """
        if self._state not in ("stopped",):
            return
        backoff = self.config.backoff_initial
        while True:
            try:
                await self._start_once()
                return
            except FnError as exc:
                if not wait or exc.code != "homeserver_unreachable":
                    self._state = "stopped"
                    raise
                self._state = "degraded"
                log.warning("%s: homeserver unreachable at start; retrying", self.config.user_id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.backoff_max)

    async def _start_once(self) -> None:
        self._state = "starting"
        try:
            await self._open()
            await self._bootstrap_cross_signing()
            # full_state: nio keeps no room state across restarts; this rebuilds it while the
            # saved token still keeps the timeline incremental.
            await self._sync_once(timeout_ms=0, full_state=True)
        except (*_NET_ERRORS, _SyncFailed) as exc:
            await self._close_quietly()
            raise FnError("homeserver_unreachable", f"{self.config.homeserver}: {exc}") from exc
        except BaseException:
            await self._close_quietly()
            raise
        self._state = "ok"
        self._task = asyncio.create_task(self._loop(), name=f"matrix-sync-{self.config.user_id}")

    async def stop(self) -> None:
        """Cancel the sync loop, close the HTTP session and the stores."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_quietly()
        self._state = "stopped"

    async def send_text(
        self, room: str, body: str, html: str | None = None, reply_to: str | None = None,
        *, encrypted: bool = True,
    ) -> str:
        content = message_content(body, html=html, reply_to=reply_to)
        return await self._send(room, "m.room.message", content, encrypt=encrypted)

    async def send_notice(
        self, room: str, body: str, html: str | None = None, reply_to: str | None = None,
        *, encrypted: bool = True,
    ) -> str:
        """``encrypted=False`` in an encrypted room: readable by a session that holds no room
        key (the bot's "verify this session" answer); never for anything secret."""
        content = message_content(body, notice=True, html=html, reply_to=reply_to)
        return await self._send(room, "m.room.message", content, encrypt=encrypted)

    async def send_custom(self, room: str, event_type: str, content: dict[str, Any]) -> str:
        return await self._send(room, event_type, content)

    async def send_reaction(self, room: str, event_id: str, key: str, *, encrypted: bool = True) -> str:
        """A reaction; encrypted in encrypted rooms as Element sends it (nio alone would not)."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self._send(room, "m.reaction", content, encrypt=encrypted)

    async def resolve(self, room: str) -> str:
        if not room.startswith("#"):
            return room
        resp = await self._net(self._client.room_resolve_alias(room))
        if isinstance(resp, nio.RoomResolveAliasResponse):
            return str(resp.room_id)
        raise FnError("room_not_found", f"no room with alias {room}")

    async def join(self, room: str) -> str:
        resp = await self._net(self._client.join(room))
        if isinstance(resp, nio.JoinResponse):
            return str(resp.room_id)
        raise FnError("matrix_join_failed", f"cannot join {room}: {getattr(resp, 'message', resp)}")

    async def create_room(
        self,
        *,
        alias: str | None = None,
        name: str | None = None,
        topic: str | None = None,
        invite: tuple[str, ...] | list[str] = (),
        power_levels: dict[str, Any] | None = None,
        encrypted: bool = True,
    ) -> str:
        """Create a private room (encrypted from its first event by default)."""
        resp = await self._net(
            self._client.room_create(
                alias=alias,
                name=name,
                topic=topic,
                invite=list(invite),
                initial_state=[encryption_state()] if encrypted else [],
                power_level_override=power_levels,
            )
        )
        if isinstance(resp, nio.RoomCreateResponse):
            return str(resp.room_id)
        code = getattr(resp, "status_code", "")
        if code == "M_ROOM_IN_USE":
            raise FnError("room_alias_taken", f"alias {alias} is taken")
        raise FnError("matrix_create_failed", f"cannot create room: {getattr(resp, 'message', resp)}")

    async def wait_for_member(self, room_id: str, user_id: str, timeout: float = 10.0) -> None:
        """Wait until ``user_id`` has joined ``room_id`` (as seen by our sync)."""
        deadline = time.monotonic() + timeout
        while True:
            room = self._client.rooms.get(room_id)
            if room is not None and user_id in room.users and user_id not in room.invited_users:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise FnError("matrix_timeout", f"{user_id} did not join {room_id} within {timeout}s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._next_sync(), left)

    async def get_event(self, room: str, event_id: str) -> Incoming:
        """Fetch one event from the server, decrypt it and judge it like a live one (how a
        device checks an approval in the approvals room itself). Does not mark it handled.
        Errors: ``event_not_found``, ``event_undecryptable``."""
        room_id = await self.resolve(room)
        resp = await self._net(self._client.room_get_event(room_id, event_id))
        if not isinstance(resp, nio.RoomGetEventResponse):
            raise FnError("event_not_found", f"no event {event_id} in {room_id}")
        event = resp.event
        if isinstance(event, nio.MegolmEvent):
            event.room_id = room_id
            try:
                event = self._client.decrypt_event(event)
            except (nio.EncryptionError, nio.LocalProtocolError) as exc:
                raise FnError("event_undecryptable", f"no room key for {event_id}") from exc
        return await self._incoming(room_id, event)

    async def kick(self, room: str, user_id: str, reason: str | None = None) -> None:
        """Remove ``user_id`` from a room (revocation); fine when they are already gone."""
        room_id = await self.resolve(room)
        resp = await self._net(self._client.room_kick(room_id, user_id, reason))
        if not isinstance(resp, nio.RoomKickResponse):
            if getattr(resp, "status_code", "") == "M_FORBIDDEN" and "not in the room" in str(
                getattr(resp, "message", "")
            ):
                return
            raise FnError("matrix_kick_failed", f"cannot remove {user_id} from {room_id}: {resp}")

    def is_verified_sender(self, event: nio.Event) -> bool:
        """The trust policy's verdict for an event this client dispatched (or can judge
        from keys it already holds). Plain (unencrypted) events are never verified."""
        verdict = self._verdicts.get(getattr(event, "event_id", ""))
        if verdict is not None:
            return verdict.verified
        room_id = getattr(event, "room_id", None)
        if room_id is None:
            return False
        return self._judge(room_id, event).verified

    # ------------------------------------------------------------------ setup
    @property
    def _client(self) -> nio.AsyncClient:
        if self._nio is None:
            raise FnError("matrix_not_started", "the Matrix client is not started")
        return self._nio

    async def _open(self) -> None:
        cfg = self.config
        cfg.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        nio_store = cfg.store_dir / "nio"
        nio_store.mkdir(exist_ok=True, mode=0o700)
        client = nio.AsyncClient(
            cfg.homeserver,
            cfg.user_id,
            store_path=str(nio_store),
            config=nio.AsyncClientConfig(
                store_sync_tokens=True,
                encryption_enabled=True,
                # Connection errors must reach us (degraded state), not be retried forever inside nio.
                max_timeouts=0,
                request_timeout=cfg.sync_timeout_ms / 1000 + 20,
            ),
        )
        self._nio = client
        session_path = cfg.store_dir / "session.json"
        session = read_json(session_path)
        if session and session.get("user_id") == cfg.user_id:
            client.restore_login(cfg.user_id, session["device_id"], session["access_token"])
            who = await client.whoami()
            if isinstance(who, nio.WhoamiError) and who.status_code == "M_UNKNOWN_TOKEN":
                # The device was logged out or the server forgot it: its keys are gone there,
                # so retire this crypto store and come back as a new (cross-signed) device.
                log.warning("%s: saved session no longer valid; logging in as a new device", cfg.user_id)
                await client.close()
                self._nio = None
                nio_store.rename(cfg.store_dir / f"nio.retired-{int(time.time())}")
                session_path.unlink()
                await self._open()
                return
        else:
            resp = await client.login(cfg.password, device_name=cfg.device_name)
            if not isinstance(resp, nio.LoginResponse):
                raise FnError("matrix_login_failed", f"login of {cfg.user_id} failed: {resp.message}")
            write_private(
                session_path,
                {"user_id": cfg.user_id, "device_id": resp.device_id, "access_token": resp.access_token},
            )
        self._device_id = str(client.device_id)
        self._filter = None
        self._handled = HandledEvents(cfg.store_dir / "handled.sqlite")
        self._first_sync_ever = client.loaded_sync_token is None
        if client.should_upload_keys:
            resp_up = await client.keys_upload()
            if not isinstance(resp_up, nio.KeysUploadResponse):
                raise FnError("matrix_keys_upload_failed", str(resp_up))

    async def _close_quietly(self) -> None:
        client, self._nio = self._nio, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        handled, self._handled = self._handled, None
        if handled is not None:
            handled.close()

    def _load_seeds(self) -> crosssign.CrossSigningSeeds:
        path = self.config.cross_signing_path or self.config.store_dir / "cross_signing.json"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = read_json(path)
        if data is not None:
            return crosssign.CrossSigningSeeds.from_json(data)
        seeds = crosssign.CrossSigningSeeds.generate()
        write_private(path, seeds.to_json())
        return seeds

    async def _api(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        client = self._client
        headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
        resp = await client.send(method, path, json.dumps(body) if body is not None else None, headers)
        try:
            data: dict[str, Any] = await resp.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            data = {}
        return resp.status, data

    async def _keys_query(self, users: list[str]) -> dict[str, Any]:
        status, data = await self._api(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {u: [] for u in users}}
        )
        if status != 200:
            raise FnError("matrix_keys_query_failed", f"/keys/query answered {status}")
        for user in users:
            self._keys[user] = {
                "master_keys": {user: data.get("master_keys", {}).get(user)}
                if user in data.get("master_keys", {})
                else {},
                "self_signing_keys": {user: data["self_signing_keys"][user]}
                if user in data.get("self_signing_keys", {})
                else {},
                "device_keys": {user: data.get("device_keys", {}).get(user, {})},
            }
            self._dirty.discard(user)
            for key in [k for k in self._chain_cache if k[0] == user]:
                del self._chain_cache[key]
        return data

    async def _bootstrap_cross_signing(self) -> None:
        """Upload our cross-signing keys (once) and sign our own device with them."""
        client, cfg = self._client, self.config
        seeds = self._seeds = self._load_seeds()
        query = await self._keys_query([cfg.user_id])
        master_obj = query.get("master_keys", {}).get(cfg.user_id) or {}
        if master_obj and cfg.adopt_identity is not None and (
            f"ed25519:{seeds.master_public}" not in master_obj.get("keys", {})
        ):
            # never reset someone else's reset back in silence: take the current identity
            seeds = self._seeds = await asyncio.to_thread(cfg.adopt_identity)
            if f"ed25519:{seeds.master_public}" not in master_obj.get("keys", {}):
                raise FnError("identity_changed", f"the server's master key of {cfg.user_id} is not ours")
            path = cfg.cross_signing_path or cfg.store_dir / "cross_signing.json"
            write_private(path, seeds.to_json())
            log.warning("%s: adopted the account's new cross-signing identity", cfg.user_id)
        if f"ed25519:{seeds.master_public}" not in master_obj.get("keys", {}):
            if master_obj:
                log.warning("replacing the cross-signing identity of %s on the server", cfg.user_id)
            body = crosssign.device_signing_upload(cfg.user_id, seeds)
            status, answer = await self._api("POST", "/_matrix/client/v3/keys/device_signing/upload", body)
            if status == 401 and "session" in answer:
                body["auth"] = {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": cfg.user_id},
                    "password": cfg.password,
                    "session": answer["session"],
                }
                status, answer = await self._api(
                    "POST", "/_matrix/client/v3/keys/device_signing/upload", body
                )
            if status != 200:
                raise FnError(
                    "cross_signing_failed",
                    f"device_signing/upload answered {status}: {answer.get('errcode')}",
                )
            query = await self._keys_query([cfg.user_id])
        device = query.get("device_keys", {}).get(cfg.user_id, {}).get(client.device_id)
        own = client.olm.account.identity_keys if client.olm else {}
        if (
            not device
            or device.get("keys", {}).get(f"ed25519:{client.device_id}") != own.get("ed25519")
            or device.get("keys", {}).get(f"curve25519:{client.device_id}") != own.get("curve25519")
        ):
            raise FnError(
                "cross_signing_failed", "the server's copy of our device keys differs from our account"
            )
        if crosssign.check_device_chain(query, cfg.user_id, client.device_id, seeds.master_public).ok:
            return
        signed = crosssign.sign_device(device, cfg.user_id, seeds)
        status, answer = await self._api(
            "POST", "/_matrix/client/v3/keys/signatures/upload", {cfg.user_id: {client.device_id: signed}}
        )
        if status != 200 or answer.get("failures"):
            raise FnError(
                "cross_signing_failed", f"signatures/upload answered {status}: {answer.get('failures')}"
            )
        self._dirty.add(cfg.user_id)

    # ------------------------------------------------------------------ sync loop
    async def _loop(self) -> None:
        backoff = self.config.backoff_initial
        while True:
            try:
                await self._sync_once(timeout_ms=self.config.sync_timeout_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive anything one sync can throw
                if not isinstance(exc, (*_NET_ERRORS, _SyncFailed)):
                    log.exception("%s: sync failed unexpectedly", self.config.user_id)
                elif self._state != "degraded":
                    log.warning("%s: homeserver unreachable (%s); degraded", self.config.user_id, exc)
                self._state = "degraded"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            if self._state == "degraded":
                log.warning("%s: homeserver back; ok", self.config.user_id)
            self._state = "ok"
            backoff = self.config.backoff_initial

    async def _next_sync(self) -> None:
        await self._synced.wait()

    async def _sync_once(self, timeout_ms: int, *, full_state: bool = False) -> None:
        client = self._client
        if self._filter is None:
            room_filter = {"timeline": {"limit": self.config.timeline_limit}}
            up = await client.upload_filter(room=room_filter)
            # An uploaded filter spares the server parsing it on every long poll.
            self._filter = up.filter_id if isinstance(up, nio.UploadFilterResponse) else {"room": room_filter}
        resp = await client.sync(timeout=timeout_ms, sync_filter=self._filter, full_state=full_state or None)
        if not isinstance(resp, nio.SyncResponse):
            raise _SyncFailed(getattr(resp, "message", str(resp)))
        if client.outgoing_to_device_messages:
            await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        for user in resp.device_list.changed:
            self._dirty.add(user)
        await self._handle_invites(resp)
        first, self._first_sync_ever = self._first_sync_ever, False
        # Identity statements first: a command in another room of this same sync must meet
        # the operator's confirmed identity, whatever order the rooms come in.
        for info in resp.rooms.join.values():
            for event in info.timeline.events:
                if event.source.get("type") == identity.IDENTITY_EVENT:
                    self._accept_identity(event.source.get("content"))
        for room_id, info in resp.rooms.join.items():
            for event in info.timeline.events:
                await self._handle_event(room_id, event, dispatch=not first or self.config.handle_backlog)
        await self._retry_pending()
        if self.config.key_backup_path is not None:
            try:
                await self._backup_room_keys(self.config.key_backup_path)
            except (*_NET_ERRORS, FnError, KeyError, ValueError) as exc:
                log.warning("%s: key backup upload failed: %s", self.config.user_id, exc)
        # Wake waiters: set then replace, so each waiter sees exactly one sync.
        synced, self._synced = self._synced, asyncio.Event()
        synced.set()

    async def _backup_room_keys(self, key_path: Path) -> None:
        """Upload the inbound Megolm sessions not backed up yet (one PUT per sync at most)."""
        olm = self._client.olm
        if olm is None:
            return
        fresh = [s for s in olm.inbound_group_store if (s.room_id, s.id) not in self._backed_up]
        if not fresh:
            return
        if self._backup is None:
            if time.monotonic() - self._backup_checked < 60:
                return
            self._backup_checked = time.monotonic()
            data = read_json(key_path)
            if data is None:
                return
            public = secretstore.backup_public_key(crosssign.b64u_decode(str(data["private_key"])))
            status, version = await self._api("GET", "/_matrix/client/v3/room_keys/version")
            if status != 200 or (version.get("auth_data") or {}).get("public_key") != public:
                return  # no backup, or one made by someone else (a reset): not ours to write
            self._backup = (str(version["version"]), public)
        ver, public = self._backup
        rooms: dict[str, Any] = {}
        for sess in fresh:
            index = sess.first_known_index
            session_data = {
                "algorithm": "m.megolm.v1.aes-sha2", "sender_key": sess.sender_key,
                "session_key": sess.export_session(index), "sender_claimed_keys": {"ed25519": sess.ed25519},
                "forwarding_curve25519_key_chain": list(sess.forwarding_chain),
            }  # fmt: skip
            rooms.setdefault(sess.room_id, {"sessions": {}})["sessions"][sess.id] = {
                "first_message_index": index, "forwarded_count": len(sess.forwarding_chain),
                "is_verified": False,
                "session_data": secretstore.encrypt_backup_session(public, session_data),
            }  # fmt: skip
        status, answer = await self._api(
            "PUT", f"/_matrix/client/v3/room_keys/keys?version={ver}", {"rooms": rooms}
        )
        if status == 200:
            self._backed_up.update((s.room_id, s.id) for s in fresh)
        else:
            self._backup = None  # e.g. M_WRONG_ROOM_KEYS_VERSION: look again later
            log.warning("%s: key backup answered %s %s", self.config.user_id, status, answer.get("errcode"))

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
                await self._client.join(room_id)
            else:
                log.info("%s: ignoring invite to %s from %s", self.config.user_id, room_id, inviter)

    async def _retry_pending(self) -> None:
        now = time.monotonic()
        for event_id, (since, room_id, event, dispatch) in list(self._pending.items()):
            event.room_id = room_id
            try:
                decrypted = self._client.decrypt_event(event)
            except (nio.EncryptionError, nio.LocalProtocolError):
                if now - since > 600:
                    del self._pending[event_id]
                continue
            del self._pending[event_id]
            decrypted.room_id = room_id
            await self._handle_event(room_id, decrypted, dispatch=dispatch)

    async def _handle_event(self, room_id: str, event: nio.Event, *, dispatch: bool) -> None:
        assert self._handled is not None
        event_id = getattr(event, "event_id", None)
        if not event_id or self._handled.seen(event_id):
            return
        if isinstance(event, nio.MegolmEvent):
            # No room key yet: it may arrive with a later sync.
            self._pending.setdefault(event_id, (time.monotonic(), room_id, event, dispatch))
            return
        self._handled.mark(event_id, room_id)
        source = event.source
        etype = str(source.get("type", ""))
        if etype == identity.IDENTITY_EVENT:
            # self-verifying (operator key): applied from the backlog too, never dispatched twice
            self._accept_identity(source.get("content"))
        if not dispatch or event.sender == self.config.user_id:
            return
        if etype == "m.room.message":
            callbacks = self._message_cbs
        elif etype == "m.reaction":
            callbacks = self._reaction_cbs
        else:
            callbacks = self._custom_cbs.get(etype, [])
        if not callbacks:
            return
        incoming = await self._incoming(room_id, event)
        for cb in callbacks:
            try:
                await cb(incoming)
            except Exception:
                log.exception("%s: callback for %s failed", self.config.user_id, etype)

    async def _incoming(self, room_id: str, event: nio.Event) -> Incoming:
        event.room_id = room_id
        verdict = await self._evaluate(room_id, event)
        source = event.source
        return Incoming(
            room_id=room_id,
            event_id=str(event.event_id),
            sender=event.sender,
            type=str(source.get("type", "")),
            content=dict(source.get("content", {})),
            decrypted=bool(getattr(event, "decrypted", False)),
            verified=verdict.verified,
            sender_device=verdict.device_id,
            event=event,
            trust=verdict.reason,
        )

    # ------------------------------------------------------------------ trust
    def _confirmations(self) -> dict[str, dict[str, Any]]:
        if self._confirmed is None:
            data = read_json(self.config.store_dir / "identities.json") or {}
            self._confirmed = {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
        return self._confirmed

    def _accept_identity(self, content: Any) -> None:
        """An operator-signed statement naming an operator's new master key: pin it."""
        if self.config.identity_keys is None:
            return
        try:
            stmt = identity.verify_statement(content, list(self.config.identity_keys()))
        except FnError as exc:
            log.warning("%s: ignoring a Matrix identity statement: %s", self.config.user_id, exc.message)
            return
        if stmt.user_id not in self.config.operators:
            log.warning("%s: identity statement for %s, not an operator", self.config.user_id, stmt.user_id)
            return
        confirmed = self._confirmations()
        prev = confirmed.get(stmt.user_id)
        if prev is not None and int(prev.get("issued_at", 0)) >= stmt.issued_at:
            return  # an older (or the same) statement: never pin an old identity back
        confirmed[stmt.user_id] = {"master_key": stmt.master_key, "issued_at": stmt.issued_at}
        write_private(self.config.store_dir / "identities.json", dict(confirmed))
        if self._pins is not None:
            self._pins.pop(stmt.user_id, None)
        for key in [k for k in self._chain_cache if k[0] == stmt.user_id]:
            del self._chain_cache[key]
        for dev in [k for k in self._trusted if k[0] == stmt.user_id]:
            del self._trusted[dev]
        self._dirty.add(stmt.user_id)
        self.pending_identities.pop(stmt.user_id, None)
        self.trust_alerts = [a for a in self.trust_alerts if stmt.user_id not in a]
        log.warning(
            "%s: the operator key confirmed the new master key %s of %s",
            self.config.user_id, stmt.master_key, stmt.user_id,
        )  # fmt: skip

    def _pin(self, user: str) -> str | None:
        confirmed = self._confirmations().get(user)
        if confirmed is not None:
            return str(confirmed["master_key"])
        if user in self.config.pinned_master_keys:
            return self.config.pinned_master_keys[user]
        if self._pins is None:
            self._pins = {
                k: str(v) for k, v in (read_json(self.config.store_dir / "pins.json") or {}).items()
            }
        return self._pins.get(user)

    def _remember_pin(self, user: str, master: str) -> None:
        if self._pin(user) is None:
            assert self._pins is not None
            self._pins[user] = master
            write_private(self.config.store_dir / "pins.json", dict(self._pins))

    def _chain(self, user: str, device_id: str, pin: str | None) -> crosssign.ChainResult:
        """check_device_chain over the cached keys, memoised until the user's keys change."""
        key = (user, device_id, pin)
        hit = self._chain_cache.get(key)
        if hit is None:
            hit = crosssign.check_device_chain(self._keys.get(user, {}), user, device_id, pin)
            self._chain_cache[key] = hit
        return hit

    async def _evaluate(self, room_id: str, event: nio.Event) -> _Verdict:
        """Judge ``event``, refreshing the sender's keys once when they may be stale."""
        if getattr(event, "decrypted", False) and (
            event.sender in self._dirty
            or event.sender not in self._keys
            or self._judge(room_id, event).reason in ("unknown_device", "device_not_cross_signed")
        ):
            with contextlib.suppress(*_NET_ERRORS, FnError):
                await self._keys_query([event.sender])
        verdict = self._judge(room_id, event)
        if not verdict.verified and event.sender in self.config.operators:
            # why an operator's message was not trusted: the first thing to look for
            log.info("%s: %s from %s (%s) not verified: %s", self.config.user_id, type(event).__name__,
                     event.sender, verdict.device_id, verdict.reason)
        self._verdicts[event.event_id] = verdict
        while len(self._verdicts) > 4096:
            self._verdicts.popitem(last=False)
        return verdict

    def _judge(self, room_id: str, event: nio.Event) -> _Verdict:
        if not getattr(event, "decrypted", False):
            return _Verdict(False, None, "not_encrypted")
        client = self._client
        sender = event.sender
        session = (
            client.olm.inbound_group_store.get(room_id, event.sender_key, event.session_id)
            if client.olm
            else None
        )
        if session is None:
            return _Verdict(False, None, "no_session")
        if session.forwarding_chain:
            return _Verdict(False, None, "forwarded_session")
        query = self._keys.get(sender)
        if query is None:
            return _Verdict(False, None, "unknown_device")
        device_id = crosssign.device_for_curve_key(query, sender, event.sender_key)
        if device_id is None:
            return _Verdict(False, None, "unknown_device")
        is_operator = sender in self.config.operators
        result = self._chain(sender, device_id, self._pin(sender) if is_operator else None)
        if result.reason == "master_key_changed":
            if result.master_key:
                self.pending_identities[sender] = result.master_key
            alert = f"master key of {sender} changed to {result.master_key}; refusing its devices"
            if alert not in self.trust_alerts:
                log.error(alert)
                self.trust_alerts.append(alert)
        if not result.ok:
            return _Verdict(False, device_id, result.reason)
        if result.device_ed25519 != session.ed25519:
            return _Verdict(False, device_id, "session_key_mismatch")
        if not is_operator:
            return _Verdict(False, device_id, "not_an_operator")
        if result.master_key:
            self._remember_pin(sender, result.master_key)
        return _Verdict(True, device_id, "ok")

    async def _apply_policy(self, room_id: str) -> None:
        """Mark room members' devices verified or blacklisted per the cross-signing chain."""
        client = self._client
        room = client.rooms.get(room_id)
        if room is None or client.olm is None:
            return
        users = list(room.users)
        stale = [
            u
            for u in users
            if u in self._dirty
            or u not in self._keys
            or any((u, d.id) not in self._trusted for d in client.device_store.active_user_devices(u))
        ]
        if stale:
            await self._keys_query(stale)
        for user in users:
            pin = self._pin(user) if user in self.config.operators else None
            for device in client.device_store.active_user_devices(user):
                if user == self.config.user_id and device.id == client.device_id:
                    self._trusted[(user, device.id)] = True
                    continue
                result = self._chain(user, device.id, pin)
                good = (
                    result.ok
                    and result.device_ed25519 == device.ed25519
                    and result.device_curve25519 == device.curve25519
                )
                before = self._trusted.get((user, device.id))
                self._trusted[(user, device.id)] = good
                if good and pin is None and user in self.config.operators and result.master_key:
                    # pin on first sight here too, not only on a first command: a reset
                    # before the first command would otherwise be pinned as the original
                    self._remember_pin(user, result.master_key)
                    pin = result.master_key
                if good:
                    if device.blacklisted:
                        client.unblacklist_device(device)
                    if not device.verified:
                        client.verify_device(device)
                    if before is False:
                        # It was left out of the current room key: make a new one.
                        client.invalidate_outbound_session(room_id)
                elif self.config.exclude_insecure_devices and not device.blacklisted:
                    client.blacklist_device(device)

    # ------------------------------------------------------------------ sending
    async def _net(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except _NET_ERRORS as exc:
            raise FnError("homeserver_unreachable", f"{self.config.homeserver}: {exc}") from exc

    async def _ensure_room(self, room_id: str, timeout: float = 10.0) -> nio.MatrixRoom:
        deadline = time.monotonic() + timeout
        while room_id not in self._client.rooms:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FnError("room_not_joined", f"{self.config.user_id} is not in {room_id}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._next_sync(), left)
        room: nio.MatrixRoom = self._client.rooms[room_id]
        return room

    async def _send(
        self, room: str, event_type: str, content: dict[str, Any], *, encrypt: bool = True
    ) -> str:
        room_id = await self.resolve(room)
        client = self._client
        mroom = await self._ensure_room(room_id)
        if mroom.encrypted and encrypt:
            if not mroom.members_synced:
                await self._net(client.joined_members(room_id))
            if client.should_query_keys:
                await self._net(client.keys_query())
            await self._net(self._apply_policy(room_id))
            if event_type == "m.reaction":
                # nio never encrypts reactions; Element does, so we do it by hand.
                if client.olm is not None and client.olm.should_share_group_session(room_id):
                    await self._net(client.share_group_session(room_id, ignore_unverified_devices=True))
                event_type, content = client.encrypt(room_id, event_type, content)
                return await self._raw_send(room_id, event_type, content)
            resp = await self._net(
                client.room_send(room_id, event_type, content, ignore_unverified_devices=True)
            )
        else:
            return await self._raw_send(room_id, event_type, content)
        if isinstance(resp, nio.RoomSendResponse):
            return str(resp.event_id)
        raise _send_error(room_id, resp)

    async def _raw_send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """PUT /send without nio's encryption step (content already final)."""
        client = self._client
        method, path, data = Api.room_send(client.access_token, room_id, event_type, content, uuid.uuid4())
        resp = await self._net(client._send(nio.RoomSendResponse, method, path, data, (room_id,)))
        if isinstance(resp, nio.RoomSendResponse):
            return str(resp.event_id)
        raise _send_error(room_id, resp)


def _send_error(room_id: str, resp: object) -> FnError:
    if getattr(resp, "status_code", "") == "M_TOO_LARGE":
        # Matrix caps an event at 65,536 bytes; encryption grows content by about 4/3.
        return FnError("matrix_event_too_large", f"event for {room_id} is over the 64 KiB limit")
    return FnError("matrix_send_failed", f"send to {room_id} failed: {getattr(resp, 'message', resp)}")


class _SyncFailed(Exception):
    """The homeserver answered the sync with an error (e.g. a 502 from a proxy)."""
