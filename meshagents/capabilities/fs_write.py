"""``fs.write``: write a file atomically under a prefix the manifest grants.

``!fs.write <path> <content>``: the path is one word; the content is the rest of the
message as typed (so prose needs no quoting), except that a content that is exactly
one quoted word (``'...'`` / ``"..."``) is unquoted, and a Markdown code fence is
replaced by the lines inside it (each ending with a newline). An uploaded file is the
other way in: the operator replies ``!fs.write <path>`` to it and the bot signs a
``file`` argument instead of ``content`` (``meshagents.matrix.attachments.FileArg``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec

_FENCE_RE = re.compile(r"```[^\n`]*\n(.*?)```[ \t]*\n?", re.DOTALL)


def parse(rest: str) -> dict[str, Any]:
    reader = words.CountingReader(rest)
    lex = words.lexer(reader)
    path_word = lex.get_token()
    if path_word is None:
        raise words.BadArguments("needs a path and the content")
    path = words.path(path_word)
    tail = reader.rest()
    # shlex ate the one character after the path; eat the rest of that blank run and
    # at most one line break, so "!fs.write /p\n<lines>" writes exactly <lines>.
    tail = tail.lstrip(" \t")
    if tail.startswith("\r\n"):
        tail = tail[2:]
    elif tail.startswith("\n"):
        tail = tail[1:]
    if not tail:
        raise words.BadArguments("the content is missing (write '' for an empty file, or send it as a reply "
                                 "to a file you uploaded)")
    return {"path": path, "content": _content(tail)}


def _content(rest: str) -> str:
    fence = _FENCE_RE.fullmatch(rest)
    if fence:
        return fence.group(1)
    if rest[0] in "'\"":
        try:
            split = shlex.split(rest, posix=True)
        except ValueError:
            return rest
        if len(split) == 1:
            return split[0]
    return rest


def render(args: Mapping[str, Any]) -> str:
    return shlex.quote(args["path"]) + " " + shlex.quote(args["content"])


SPEC = CapabilitySpec(
    name="fs.write",
    command="fs.write",
    usage="!fs.write <path> <content>",
    summary="write a file atomically (content: the rest of the message, or one quoted word, "
            "or a ``` code block)",
    example="!fs.write /tmp/note.txt hello from the operator",
    parse=parse,
    render=render,
    arguments={
        "path": "an absolute file path",
        "content": "the text to write (UTF-8)",
        "file": "an uploaded file instead of content (set by the bot, never typed)",
    },
)
