"""The capabilities that take no arguments: ``sensors``, ``camera.snapshot``, ``system.info``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshagents.capabilities import words
from meshagents.capabilities.spec import CapabilitySpec


def parse(rest: str) -> dict[str, Any]:
    return words.no_args(words.split(rest))


def render(args: Mapping[str, Any]) -> str:
    return ""


def no_args_spec(name: str, command: str, summary: str, aliases: tuple[str, ...] = ()) -> CapabilitySpec:
    """The spec of a capability whose command is its bare name: ``!<command>``."""
    return CapabilitySpec(name=name, command=command, usage=f"!{command}", summary=summary,
                          example=f"!{command}", parse=parse, render=render, aliases=aliases)
