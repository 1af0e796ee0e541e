"""``docker.container.exec`` (and ``.exec.<program>``): a whitelisted program in a container."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec, manifest_container, manifest_program

NAME = "docker.container.exec"


def parse(rest: str) -> dict[str, Any]:
    given = words.split(rest)
    if not given:
        raise words.BadArguments("needs a container and a program")
    return {"container": words.container(given[0]), "argv": words.argv(given[1:], "a program to run")}


def render(args: Mapping[str, Any]) -> str:
    return shlex.join([args["container"], *args["argv"]])


def example_for(capability: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    program, container = manifest_program(NAME, capability, entry), manifest_container(entry)
    if not (program or container):
        return SPEC.usage, SPEC.example
    specific = f"!docker exec <container> {program} [args ...]"
    usage = SPEC.usage if capability == NAME else specific
    return usage, f"!docker exec {container or 'web'} {program or 'ps'}"


SPEC = CapabilitySpec(
    name=NAME,
    command="docker exec",
    usage="!docker exec <container> <program> [args ...]",
    summary="run a whitelisted program in a container",
    example="!docker exec web ps",
    parse=parse,
    render=render,
    arguments={"container": "a container name (a values entry)",
               "argv": "the program inside the container and its arguments"},
    aliases=("docker.exec", "docker.container.exec"),
    family=True,
    example_for=example_for,
)
