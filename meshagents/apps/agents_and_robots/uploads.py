"""``!fs.write <path>`` as a reply to a file the operator uploaded (pure parts).

    reply_target(content) -> event id | None      # m.relates_to.m.in_reply_to.event_id
    upload_write_path(body) -> path | None        # "!fs.write /p" with no content, else None
    shown_args(args) -> args                      # the approval text: name, size, SHA-256, never the key

The shell fetches the replied-to event (``MatrixClient.get_event``): it must be an
encrypted ``m.file`` (or image/audio/video) from the same operator, decrypted from a
verified device. The bot downloads and decrypts it only to learn its SHA-256 and size,
which it signs into the envelope with the file's url, key and IV
(``meshagents.matrix.attachments.FileArg``); the device downloads it again itself and
refuses any other bytes. Codes: ``not_a_file``, ``attachment_invalid``,
``attachment_too_large``, ``file_not_yours``, ``file_unverified``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from meshagents.apps.agents_and_robots.commands import strip_reply_fallback
from meshagents.trust.approval import shown_args as shown_args  # re-exported: the text R shows


def reply_target(content: Mapping[str, Any]) -> str | None:
    rel = content.get("m.relates_to")
    if not isinstance(rel, Mapping):
        return None
    reply = rel.get("m.in_reply_to")
    event_id = reply.get("event_id") if isinstance(reply, Mapping) else None
    if isinstance(event_id, str) and event_id.startswith("$") and len(event_id) < 256:
        return event_id
    return None


def upload_write_path(body: str) -> str | None:
    """The path of a bare ``!fs.write <path>`` (one word, nothing after it)."""
    text = strip_reply_fallback(body).strip()
    if not text.startswith("!"):
        return None
    try:
        words = shlex.split(text[1:], posix=True)
    except ValueError:
        return None
    if len(words) != 2 or words[0].lower() != "fs.write" or not words[1].startswith("/"):
        return None
    return words[1] if "\x00" not in words[1] else None


