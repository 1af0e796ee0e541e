"""``control.cancel``: stop a request that runs on the device (a signed request like any)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec

_TARGET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")  # the trust core's request id pattern


def parse(rest: str) -> dict[str, Any]:
    given = words.split(rest)
    if len(given) != 1 or not _TARGET_RE.fullmatch(given[0]):
        raise words.BadArguments("needs the id of the running request (e.g. req-0123456789abcdef, shown "
                                 "while it runs)")
    return {"request_id": given[0]}


def render(args: Mapping[str, Any]) -> str:
    return str(args["request_id"])


SPEC = CapabilitySpec(
    name="control.cancel",
    command="cancel",
    usage="!cancel <request id>",
    summary="stop a running request (its id is in the running message); a new signed request, "
            "approved like any other",
    example="!cancel req-0123456789abcdef",
    parse=parse,
    render=render,
    arguments={"request_id": "the id of the running request"},
    aliases=("control.cancel",),
)
