"""Pure helpers for the per-device rooms: names, aliases, power levels, initial state.

One room per device (``#dev-<name>``) or container (``#cont-<name>``), encrypted from
creation; power levels: operators 100 (admin), the bot 50 (moderator), the device
user 0 (member, may still send messages and custom events).

``#operator-approvals`` (:func:`approvals_power_levels`): operators and the bot 100,
everyone else 0 with ``events_default`` 50, so device users read but never post a
message or a reaction there (a look-alike approval request from a device fails at the
homeserver, and again at every device's own check).
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


APPROVALS_POST_LEVEL = 50


def approvals_power_levels(operators: list[str], bot: str | None) -> dict[str, Any]:
    """``m.room.power_levels`` of ``#operator-approvals``: only operators and the bot post."""
    levels = power_levels(operators, None, None)
    if bot:
        levels["users"][bot] = 100
    levels["events_default"] = APPROVALS_POST_LEVEL
    return levels


def approvals_levels_fixed(
    current: dict[str, Any], operators: list[str], bot: str | None
) -> dict[str, Any] | None:
    """``current`` raised so that devices cannot post and operators can, or None if it is so."""
    users = dict(current.get("users") or {})
    changed = False
    default = current.get("events_default", 0)
    if not isinstance(default, int) or default < APPROVALS_POST_LEVEL:
        changed = True
    if int(current.get("users_default", 0) or 0) >= APPROVALS_POST_LEVEL:
        changed = True
    for user in [*operators, *([bot] if bot else [])]:
        if int(users.get(user, 0) or 0) < APPROVALS_POST_LEVEL:
            users[user] = APPROVALS_POST_LEVEL if user != bot else 100
            changed = True
    if not changed:
        return None
    return {**current, "users": users, "events_default": APPROVALS_POST_LEVEL, "users_default": 0}


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
