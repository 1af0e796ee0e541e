"""``fs.list``: the entries of one directory under a prefix the manifest grants."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec


def parse(rest: str) -> dict[str, Any]:
    return words.one_path(words.split(rest))


def render(args: Mapping[str, Any]) -> str:
    return shlex.quote(args["path"])


SPEC = CapabilitySpec(
    name="fs.list",
    command="ls",
    usage="!ls <path>",
    summary="list a directory",
    example="!ls /var/log",
    parse=parse,
    render=render,
    arguments={"path": "an absolute directory path"},
    aliases=("fs.list",),
)
