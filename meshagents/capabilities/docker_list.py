"""``docker.container.list``: the containers of the device's Docker engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec


def parse(rest: str) -> dict[str, Any]:
    given = [words.option(w) for w in words.split(rest)]
    if any(w not in ("-a", "--all") for w in given):
        raise words.BadArguments("the only option is -a / --all")
    # decide() knows strings (values) and integers (limits), not booleans
    return {"all": 1} if given else {}


def render(args: Mapping[str, Any]) -> str:
    return "-a" if args.get("all") else ""


SPEC = CapabilitySpec(
    name="docker.container.list",
    command="docker ps",
    usage="!docker ps [-a]",
    summary="list the containers",
    example="!docker ps -a",
    parse=parse,
    render=render,
    arguments={"all": "1: stopped containers too (a limits entry)"},
    aliases=("docker.ps", "docker.container.list"),
)
