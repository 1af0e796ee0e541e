"""The operator's Matrix client for the rig, the smoke test and ``./fn chat``.

    op = Operator(OperatorLogin(homeserver, user_id, password, cross_signing_path, store_dir),
                  bot_user="@bot:hub.mesh", server_name="hub.mesh")
    await op.start()                                   # log in, cross-sign, join invited rooms
    reply = await op.command("home-wsl", "!exec ls /tmp", timeout=30)
    reply.body, reply.sender, reply.seconds            # the first answer from the device (or bot)
    approval_id, request_event = await op.wait_approval_request(device="home-wsl")
    await op.approve(request_event)                    # 👍 on an approval request (encrypted)
    result = await op.wait_event(RESULT_EVENT, lambda ev: ev.content["request_id"] == rid)
    status = await op.wait_event(STATUS_EVENT, lambda ev: ev.content["state"] == "degraded")
    await op.stop()

Every room message and every ``org.meshagents.result`` / ``.status`` event seen since
``start`` is kept (the last 500 of each kind), so a test can wait for one that came
before it asked; the result a device's answer carries (``bus.RESULT_KEY``) is kept as a
result event too.

On the Matrix layer's ``MatrixClient``: E2EE, its device cross-signed with the
operator's seeds (``cross_signing_path``, shared by every store of the account, so
``./fn chat`` and the rig's own client are both verified operator devices), and it
accepts room invites from the bot. Replies are matched by ``m.in_reply_to`` on the
command's event id; ``command`` waits for the device user's answer and returns a
refusal from the bot at once (the bot answers what the manifest lacks itself).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagents import trace
from meshagents.bus import APPROVAL_REQUEST_KEY, LIVE_KEY, RESULT_EVENT, STATUS_EVENT, carried_result
from meshagents.errors import FnError
from meshagents.matrix.client import ClientConfig, Incoming, MatrixClient
from meshagents.matrix.crosssign import CrossSigningSeeds
from meshagents.matrix.recovery import Account
from meshagents.testbed.rig.config import APPROVALS_ALIAS, device_alias, room_alias


@dataclass(frozen=True)
class OperatorLogin(Account):
    """The operator's Matrix account (``matrix.recovery.Account``) and where its client keeps its store."""

    store_dir: Path
    #: After an identity reset in Element: the client takes the new seeds from secret
    #: storage with it; without it, it refuses to start (never resets the identity back).
    recovery_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class Reply:
    sender: str
    body: str
    event_id: str
    room_id: str
    seconds: float  # from sending the command to this reply
    content: dict[str, Any]


def in_reply_to(content: dict[str, Any]) -> str | None:
    """The event id a message replies to (``m.relates_to.m.in_reply_to.event_id``), pure."""
    rel = content.get("m.relates_to")
    if not isinstance(rel, dict):
        return None
    inner = rel.get("m.in_reply_to")
    if isinstance(inner, dict) and isinstance(inner.get("event_id"), str):
        return str(inner["event_id"])
    return None


Listener = Callable[[Incoming], Awaitable[None]]


def _adopt(login: OperatorLogin) -> CrossSigningSeeds:
    if not login.recovery_key:
        raise FnError(
            "identity_changed",
            f"the server's cross-signing identity of {login.user_id} is not the one in "
            f"{login.cross_signing_path} (reset in Element?); give the recovery key to take it over",
        )
    from meshagents.matrix.recovery import read_seeds

    return read_seeds(login, login.recovery_key)


class Operator:
    def __init__(self, login: OperatorLogin, *, bot_user: str, server_name: str) -> None:
        self.login = login
        self.bot_user = bot_user
        self.server_name = server_name
        self.client = MatrixClient(
            ClientConfig(
                homeserver=login.homeserver,
                user_id=login.user_id,
                password=login.password,
                store_dir=login.store_dir,
                operators=(login.user_id,),
                device_name="meshagents-operator",
                accept_invites_from=(bot_user,),
                cross_signing_path=login.cross_signing_path,
                adopt_identity=lambda: _adopt(login),
                # the recovery key's backup: Element sessions verified later read our history
                key_backup_path=login.cross_signing_path.with_name("megolm_backup.json"),
                sync_timeout_ms=5_000,
                backoff_max=2.0,
            )
        )
        self._messages: list[Incoming] = []
        self._custom: dict[str, list[Incoming]] = {RESULT_EVENT: [], STATUS_EVENT: []}
        self._changed = asyncio.Event()
        self._listeners: list[Listener] = []
        self.rooms: dict[str, str] = {}  # alias -> room id

    async def start(self) -> None:
        self.client.on_message(self._on_message)
        for event_type in self._custom:
            self.client.on_custom_event(event_type, self._keeper(event_type))
        await self.client.start()

    def _keeper(self, event_type: str) -> Listener:
        async def keep(ev: Incoming) -> None:
            kept = self._custom[event_type]
            kept.append(ev)
            del kept[:-500]
            self._changed.set()

        return keep

    async def stop(self) -> None:
        await self.client.stop()

    def on_message(self, listener: Listener) -> None:
        """Also hand every room message to ``listener`` (``./fn chat`` prints them)."""
        self._listeners.append(listener)

    async def _on_message(self, ev: Incoming) -> None:
        self._messages.append(ev)
        del self._messages[:-500]
        carried = carried_result(ev.content)
        if carried is not None:  # the result a device's answer carries: kept as a result event
            kept = self._custom[RESULT_EVENT]
            kept.append(dataclasses.replace(ev, type=RESULT_EVENT, content=carried))
            del kept[:-500]
        self._changed.set()
        for listener in self._listeners:
            await listener(ev)

    async def room(self, alias: str, timeout: float = 30.0) -> str:
        """Join ``alias`` (invited by the bot) and return its room id; retries until invited."""
        if alias in self.rooms:
            return self.rooms[alias]
        deadline = time.monotonic() + timeout
        while True:
            try:
                room_id = await self.client.join(alias)
                break
            except FnError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        self.rooms[alias] = room_id
        return room_id

    async def device_room(self, device: str) -> str:
        return await self.room(device_alias(device, self.server_name))

    async def approvals_room(self) -> str:
        return await self.room(room_alias(APPROVALS_ALIAS, self.server_name))

    async def wait_member(self, room_id: str, user_id: str, timeout: float = 60.0) -> None:
        await self.client.wait_for_member(room_id, user_id, timeout=timeout)

    async def wait_message(self, match: Callable[[Incoming], bool], timeout: float = 30.0) -> Incoming:
        """The first room message (seen since start, oldest first) that ``match`` accepts."""
        return await self._wait(self._messages, match, timeout)

    async def wait_event(
        self, event_type: str, match: Callable[[Incoming], bool] = lambda _ev: True, timeout: float = 30.0
    ) -> Incoming:
        """The first ``RESULT_EVENT`` or ``STATUS_EVENT`` (seen since start) that ``match`` accepts."""
        if event_type not in self._custom:
            raise FnError("bad_usage", f"only {', '.join(self._custom)} are kept")
        return await self._wait(self._custom[event_type], match, timeout)

    async def wait_approval_request(
        self, device: str | None = None, timeout: float = 30.0
    ) -> tuple[str, str]:
        """The next approval request the bot posted (for ``device``): (approval id, event id)."""
        approvals = await self.approvals_room()

        def match(ev: Incoming) -> bool:
            req = ev.content.get(APPROVAL_REQUEST_KEY)
            return (
                ev.room_id == approvals
                and isinstance(req, dict)
                and (device is None or req.get("device_id", req.get("device")) == device)
            )

        ev = await self.wait_message(match, timeout)
        self._messages.remove(ev)  # the next call waits for the next request
        return str(ev.content[APPROVAL_REQUEST_KEY].get("approval_id")), ev.event_id

    async def _wait(
        self, events: list[Incoming], match: Callable[[Incoming], bool], timeout: float
    ) -> Incoming:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for ev in events:
                if match(ev):
                    return ev
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise FnError("reply_timeout", f"no matching message within {timeout:.0f} s")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue

    async def send(self, device: str, text: str) -> tuple[str, str]:
        """Send ``text`` to ``#dev-<device>``; (room id, event id)."""
        room_id = await self.device_room(device)
        return room_id, await self.client.send_text(room_id, text)

    async def command(
        self, device: str, text: str, timeout: float = 30.0, *, device_user: str | None = None
    ) -> Reply:
        """Send a command and wait for its answer: the device user's reply, or the bot's
        refusal (the bot answers at once what the manifest lacks)."""
        room_id = await self.device_room(device)
        t0 = time.perf_counter()
        t0_wall = time.time_ns()
        event_id = await self.client.send_text(room_id, text)
        trace.stamp("op.send", event_id, wall_ns=t0_wall)
        trace.stamp("op.sent", event_id)
        wanted = device_user or f"@dev-{device}:{self.server_name}"

        live_ids: set[str] = set()  # the device's live message for a long command (bus.LIVE_KEY)

        def match(ev: Incoming) -> bool:
            marker = ev.content.get(LIVE_KEY)
            if isinstance(marker, dict) and ev.room_id == room_id and ev.sender == wanted:
                if marker.get("state") == "running" and in_reply_to(ev.content) == event_id:
                    live_ids.add(ev.event_id)  # a placeholder: the answer is its final edit
                    return False
                rel = ev.content.get("m.relates_to")
                edited = rel.get("event_id") if isinstance(rel, dict) else None
                return marker.get("state") == "final" and edited in live_ids
            if ev.room_id != room_id or in_reply_to(ev.content) != event_id:
                return False
            if ev.sender == wanted:
                return True
            # the bot's final answers (refusals, revoked); its "waiting for approval" is not one
            return ev.sender == self.bot_user and not (ev.body or "").startswith("waiting for approval")

        ev = await self.wait_message(match, timeout)
        trace.stamp("op.reply", event_id)
        new = ev.content.get("m.new_content")
        body = new.get("body") if isinstance(new, dict) else ev.body  # a final edit: its new text
        return Reply(ev.sender, str(body or ""), ev.event_id, room_id, time.perf_counter() - t0, ev.content)

    async def approve(self, request_event_id: str, key: str = "👍") -> str:
        """React to an approval request in #operator-approvals (encrypted, as Element does)."""
        room_id = await self.approvals_room()
        return await self.client.send_reaction(room_id, request_event_id, key, encrypted=True)
