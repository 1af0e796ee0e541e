"""``shell.exec`` (and ``shell.exec.<program>``): run a whitelisted program, no shell.

``!exec ls;rm -rf /`` is the argv ``["ls;rm", "-rf", "/"]``: the words are split with
shell quoting rules and nothing else (see :mod:`meshagents.capabilities.words`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec, manifest_program

NAME = "shell.exec"


def parse(rest: str) -> dict[str, Any]:
    return {"argv": words.argv(words.split(rest), "a program to run")}


def render(args: Mapping[str, Any]) -> str:
    return shlex.join(args["argv"])


def example_for(capability: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    program = manifest_program(NAME, capability, entry)
    if not program:
        return SPEC.usage, SPEC.example
    usage = SPEC.usage if capability == NAME else f"!exec {program} [args ...]"
    return usage, f"!exec {program}"


SPEC = CapabilitySpec(
    name=NAME,
    command="exec",
    usage="!exec <program> [args ...]",
    summary="run a whitelisted program (no shell: ; | $() are plain characters)",
    example="!exec ls -la /home/operator",
    parse=parse,
    render=render,
    arguments={"argv": "the program and its arguments, as typed (argv[0] a whitelisted program)"},
    aliases=("shell.exec",),
    family=True,
    example_for=example_for,
)
