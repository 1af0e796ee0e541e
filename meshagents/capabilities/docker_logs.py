"""``docker.container.logs``: a container's last log lines, optionally followed a while."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec, manifest_container

DEFAULT_LOG_TAIL = 100
MAX_LOG_TAIL = 10000
MAX_FOLLOW_S = 300


def parse(rest: str) -> dict[str, Any]:
    given = words.split(rest)
    container: str | None = None
    seen: dict[str, int] = {}
    i = 0
    while i < len(given):
        word = words.option(given[i])
        option, eq, inline = word.partition("=")
        if option in ("--tail", "--follow", "-n"):
            key = "tail" if option in ("--tail", "-n") else "follow_s"
            if key in seen:
                raise words.BadArguments(f"{option} given twice")
            if eq:
                value: str | None = inline
            else:
                value = given[i + 1] if i + 1 < len(given) else None
                i += 1
            seen[key] = words.int_option(option, value, MAX_LOG_TAIL if key == "tail" else MAX_FOLLOW_S)
        elif word.startswith("-"):
            raise words.BadArguments(f"unknown option {words.label(word)}")
        elif container is None:
            container = words.container(word)
        else:
            raise words.BadArguments(f"one container only (got {words.label(word)} too)")
        i += 1
    if container is None:
        raise words.BadArguments("needs a container")
    tail = seen.get("tail", DEFAULT_LOG_TAIL)
    if tail < 1:
        raise words.BadArguments("--tail is at least 1")
    args: dict[str, Any] = {"container": container, "tail": tail}
    if seen.get("follow_s"):  # only when asked: a manifest without a follow_s limit still allows tails
        args["follow_s"] = seen["follow_s"]
    return args


def render(args: Mapping[str, Any]) -> str:
    out = [args["container"], "--tail", str(args["tail"])]
    if args.get("follow_s"):
        out += ["--follow", str(args["follow_s"])]
    return shlex.join(out)


def example_for(capability: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    container = manifest_container(entry)
    return (SPEC.usage, f"!docker logs {container} --tail 50") if container else (SPEC.usage, SPEC.example)


SPEC = CapabilitySpec(
    name="docker.container.logs",
    command="docker logs",
    usage="!docker logs <container> [--tail N] [--follow S]",
    summary=f"a container's last N log lines (default {DEFAULT_LOG_TAIL}, at most {MAX_LOG_TAIL}), "
            f"optionally following for S seconds (at most {MAX_FOLLOW_S})",
    example="!docker logs web --tail 50 --follow 10",
    parse=parse,
    render=render,
    arguments={"container": "a container name (a values entry)", "tail": f"lines, 1-{MAX_LOG_TAIL}",
               "follow_s": f"seconds to follow, 1-{MAX_FOLLOW_S} (only when asked)"},
    aliases=("docker.logs", "docker.container.logs"),
    example_for=example_for,
)
