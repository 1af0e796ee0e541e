"""Pure helpers for the per-device rooms: names, aliases, power levels, initial state.

One room per device (``#dev-<name>``) or container (``#cont-<name>``), encrypted from
creation; power levels: operators 100 (admin), the bot 50 (moderator), the device
user 0 (member, may still send messages and custom events).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from meshagents.errors import FnError

RoomKind = Literal["dev", "cont"]

#: What Matrix allows in an alias localpart, kept lower-case and short.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._=-]{0,62}$")

MEGOLM = "m.megolm.v1.aes-sha2"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise FnError(
            "bad_device_name",
            "device name must be 1-63 chars of a-z 0-9 . _ = -, starting with a letter or digit",
            name=name,
        )
    return name


def alias_localpart(kind: RoomKind, name: str) -> str:
    """``dev-<name>`` or ``cont-<name>``."""
    if kind not in ("dev", "cont"):
        raise FnError("bad_room_kind", f"room kind must be dev or cont, not {kind!r}")
    return f"{kind}-{check_name(name)}"


def server_of(user_id: str) -> str:
    """The server name part of ``@user:server``."""
    if not user_id.startswith("@") or ":" not in user_id:
        raise FnError("bad_user_id", f"not a Matrix user id: {user_id!r}")
    return user_id.split(":", 1)[1]


def full_alias(localpart: str, server_name: str) -> str:
    return f"#{localpart}:{server_name}"


def power_levels(operators: list[str], bot: str | None, device_user: str | None) -> dict[str, Any]:
    """``m.room.power_levels`` content: operators 100, bot 50, device 0."""
    users: dict[str, int] = {}
    if device_user:
        users[device_user] = 0
    if bot:
        users[bot] = 50
    for op in operators:
        users[op] = 100
    return {
        "users": users,
        "users_default": 0,
        "events_default": 0,
        "state_default": 50,
        "invite": 50,
        "kick": 50,
        "ban": 50,
        "redact": 50,
        "events": {
            "m.room.power_levels": 100,
            "m.room.encryption": 100,
            "m.room.history_visibility": 100,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.name": 50,
            "m.room.topic": 50,
        },
    }


def encryption_state() -> dict[str, Any]:
    """Initial state that makes the room encrypted from its first event."""
    return {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}


def message_content(
    body: str, *, notice: bool = False, html: str | None = None, reply_to: str | None = None
) -> dict[str, Any]:
    """``m.room.message`` content: text or notice, optional HTML body and reply."""
    content: dict[str, Any] = {"msgtype": "m.notice" if notice else "m.text", "body": body}
    if html is not None:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = html
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def code_block_html(text: str, language: str | None = None) -> str:
    """``<pre><code>`` with HTML escaping, as Element renders code blocks."""
    import html

    cls = f' class="language-{html.escape(language, quote=True)}"' if language else ""
    return f"<pre><code{cls}>{html.escape(text)}</code></pre>"
