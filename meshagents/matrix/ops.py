"""What the matrix_* catalog functions do, over a started MatrixClient (async), plus the
blocking shells the functions call. Kept here so the bot can reuse the async parts."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nio

from meshagents.errors import FnError
from meshagents.matrix import rooms
from meshagents.matrix.admin import register_user
from meshagents.matrix.client import MatrixClient
from meshagents.matrix.settings import Credentials, MatrixSettings, actor_credentials

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceRoom:
    room_id: str
    alias: str
    created: bool
    invited: list[str]


def _wanted_levels(
    settings: MatrixSettings, actor: str, operators: list[str], bot: str | None, device_user: str | None
) -> dict[str, Any]:
    levels = rooms.power_levels(operators, bot, device_user)
    # The creating account must keep the power to invite (the bot's 50) when it has no role.
    levels["users"].setdefault(actor, 50)
    return levels


async def room_for_device(
    client: MatrixClient,
    settings: MatrixSettings,
    *,
    kind: rooms.RoomKind,
    name: str,
    device_user: str | None,
    operators: list[str],
    bot: str | None,
) -> DeviceRoom:
    """Find or create ``#<kind>-<name>``; make sure operators, bot and device are invited."""
    localpart = rooms.alias_localpart(kind, name)
    alias = rooms.full_alias(localpart, settings.server_name)
    members = [u for u in [*operators, bot, device_user] if u and u != client.user_id]
    members = list(dict.fromkeys(members))
    try:
        room_id = await client.resolve(alias)
    except FnError as exc:
        if exc.code != "room_not_found":
            raise
        try:
            wanted = _wanted_levels(settings, client.user_id, operators, bot, device_user)
            # Create as admin (the initial state needs 100), then step down to the wanted levels.
            creating = {**wanted, "users": {**wanted["users"], client.user_id: 100}}
            room_id = await client.create_room(
                alias=localpart,
                name=f"{'device' if kind == 'dev' else 'container'} {name}",
                topic=f"meshagents control room for {name}",
                invite=members,
                power_levels=creating,
            )
            if wanted["users"][client.user_id] != 100:
                resp = await client.nio_client.room_put_state(room_id, "m.room.power_levels", wanted)
                if not isinstance(resp, nio.RoomPutStateResponse):
                    raise FnError("matrix_state_failed", f"cannot set the power levels of {alias}: {resp}")
            return DeviceRoom(room_id, alias, True, members)
        except FnError as exc2:
            if exc2.code != "room_alias_taken":  # another caller won the race: use its room
                raise
            room_id = await client.resolve(alias)
    await client.join(room_id)
    present = await _members(client, room_id)
    invited = []
    for user in members:
        if user not in present:
            resp = await client.nio_client.room_invite(room_id, user)
            if not isinstance(resp, nio.RoomInviteResponse):
                raise FnError("matrix_invite_failed", f"cannot invite {user} to {alias}: {resp}")
            invited.append(user)
    return DeviceRoom(room_id, alias, False, invited)


async def _members(client: MatrixClient, room_id: str) -> set[str]:
    """Joined and invited members (from the server, not our possibly stale sync)."""
    resp = await client.nio_client.room_get_state(room_id)
    if not isinstance(resp, nio.RoomGetStateResponse):
        raise FnError("matrix_state_failed", f"cannot read the members of {room_id}")
    return {
        ev["state_key"]
        for ev in resp.events
        if ev.get("type") == "m.room.member" and ev.get("content", {}).get("membership") in ("join", "invite")
    }


def compose(
    body: str, *, code: str | None = None, language: str | None = None, html: str | None = None
) -> tuple[str, str | None]:
    """Plain and HTML bodies; ``code`` becomes a fenced block / ``<pre><code>`` after the text."""
    if code is None:
        return body, html
    import html as htmllib

    fence = f"```{language or ''}\n{code}\n```"
    plain = f"{body}\n{fence}" if body else fence
    escaped = htmllib.escape(body).replace("\n", "<br>")
    head = html if html is not None else escaped
    return plain, head + rooms.code_block_html(code, language)


async def send_message(
    client: MatrixClient,
    room: str,
    body: str,
    *,
    notice: bool = False,
    html: str | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    room_id = await client.resolve(room)
    if room_id not in client.nio_client.rooms:
        await client.join(room_id)
    send = client.send_notice if notice else client.send_text
    event_id = await send(room_id, body, html=html, reply_to=reply_to)
    encrypted = bool(client.nio_client.rooms[room_id].encrypted)
    return {"event_id": event_id, "room_id": room_id, "encrypted": encrypted}


def run_as(
    settings: MatrixSettings,
    work: Callable[[MatrixClient], Awaitable[T]],
    *,
    credentials: Path | None = None,
    purpose: str = "functions",
) -> T:
    """Start a client for the acting account, run ``work``, stop it (blocking)."""
    creds, root = actor_credentials(settings, credentials)
    # nio logs expected misses (an unknown alias) as warnings; a one-shot call's stderr
    # should carry only our own error line.
    logging.getLogger("nio").setLevel(logging.ERROR)

    async def main() -> T:
        client = MatrixClient(
            creds.client_config(root, purpose, operators=settings.operators, sync_timeout_ms=2_000)
        )
        await client.start()
        try:
            return await work(client)
        finally:
            await client.stop()

    return asyncio.run(main())


def kick_with_saved_session(
    settings: MatrixSettings, room: str, user: str, reason: str | None, *,
    credentials: Path | None = None, purpose: str = "functions", timeout: float = 10.0,
) -> dict[str, Any] | None:
    """Kick ``user`` from ``room`` with plain HTTP and the access token that ``run_as``
    saved for ``purpose`` (a kick is a state event: no crypto, no sync needed).

    None when there is no saved session or it is no longer valid: the caller falls back
    to ``run_as``. Fine when the user is already gone (as ``MatrixClient.kick``)."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    from meshagents.fsutil import read_json

    creds, root = actor_credentials(settings, credentials)
    session = read_json(root / "stores" / purpose / "session.json")
    token = session.get("access_token") if session and session.get("user_id") == creds.user_id else None
    base = creds.homeserver.rstrip("/")
    if not isinstance(token, str) or not base.startswith(("http://", "https://")):
        return None

    def req(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(base + path, data=data, method=method,  # noqa: S310 - scheme checked
                                   headers={"Authorization": f"Bearer {token}",
                                            "Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:  # noqa: S310 - scheme checked
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except (urllib.error.URLError, OSError) as exc:
            raise FnError("homeserver_unreachable", f"cannot reach {base}: {exc}") from exc

    room_id = room
    if room.startswith("#"):
        code, got = req("GET", "/_matrix/client/v3/directory/room/" + urllib.parse.quote(room, safe=""))
        if code == 401:
            return None
        if code != 200 or not isinstance(got.get("room_id"), str):
            raise FnError("room_not_found", f"no room with alias {room}")
        room_id = got["room_id"]
    body: dict[str, Any] = {"user_id": user}
    if reason:
        body["reason"] = reason
    code, got = req("POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/kick", body)
    if code == 401:
        return None
    gone = got.get("errcode") == "M_FORBIDDEN" and "not in the room" in str(got.get("error"))
    if code != 200 and not gone:
        raise FnError("matrix_kick_failed", f"cannot remove {user} from {room_id}: {code} {got}")
    return {"room_id": room_id, "user": user, "removed": True}


def provision_account(settings: MatrixSettings, localpart: str, credentials_path: Path) -> dict[str, Any]:
    """Create ``@localpart`` with a random password saved 0600 at ``credentials_path``.

    Idempotent: existing credentials for that user are kept (``created`` false). The
    password is never returned or logged.
    """
    user_id = f"@{localpart}:{settings.server_name}"
    if credentials_path.exists():
        existing = Credentials.load(credentials_path)
        if existing.user_id != user_id:
            raise FnError(
                "matrix_credentials_conflict", f"{credentials_path} holds {existing.user_id}, not {user_id}"
            )
        return {"user_id": user_id, "credentials_path": str(credentials_path), "created": False}
    password = secrets.token_urlsafe(24)
    answer = register_user(settings.homeserver, settings.shared_secret(), localpart, password)
    Credentials(settings.homeserver, str(answer.get("user_id", user_id)), password).save(credentials_path)
    return {
        "user_id": str(answer.get("user_id", user_id)),
        "credentials_path": str(credentials_path),
        "created": True,
    }
