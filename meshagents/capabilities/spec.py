"""What a capability is for everyone who names it: :class:`CapabilitySpec`.

A spec is pure data plus two pure functions, so the bot (its parser, ``!help``, the
pre-check) and the device agent (its dispatch table, its offer) may both import it
without either importing the other::

    CapabilitySpec(name, command, usage, summary, example, parse, render, arguments,
                   aliases=(), family=False, example_for=None)
    spec.parse(rest) -> args           # the message text after the command; BadArguments
    spec.render(args) -> rest          # spec.parse(spec.render(a)) == a
    spec.covers(capability) -> bool    # "shell.exec.ls" is the shell.exec family's

``name`` is the manifest capability; ``command`` the bot's word for it (``ls`` for
``fs.list``, ``docker logs`` for ``docker.container.logs``). Arguments are shaped for
the trust core's ``decide()``, which refuses any key a capability does not declare:
``arguments`` lists the keys a parse may produce, each with what it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Parse = Callable[[str], dict[str, Any]]
Render = Callable[[Mapping[str, Any]], str]
#: (capability as the manifest names it, its manifest entry) -> (usage, example) for !help
ExampleFor = Callable[[str, Mapping[str, Any]], tuple[str, str]]


@dataclass(frozen=True)
class CapabilitySpec:
    """One device capability as the bot and the device agent both see it."""

    name: str
    command: str
    usage: str
    summary: str
    example: str
    parse: Parse = field(compare=False)
    render: Render = field(compare=False)
    #: argument key -> what it holds (every key ``parse`` may return)
    arguments: Mapping[str, str] = field(default_factory=dict, compare=False)
    aliases: tuple[str, ...] = ()
    #: ``<name>.<program>`` is this capability too, granted for one program
    family: bool = False
    example_for: ExampleFor | None = field(default=None, compare=False)

    def covers(self, capability: str) -> bool:
        """Whether a manifest capability named ``capability`` is this one."""
        return capability == self.name or (self.family and capability.startswith(self.name + "."))

    def usage_and_example(self, capability: str, entry: Mapping[str, Any]) -> tuple[str, str]:
        """Usage and an example this manifest entry would let through, where it can tell."""
        if self.example_for is not None:
            return self.example_for(capability, entry)
        return self.usage, self.example


def manifest_program(family: str, capability: str, entry: Mapping[str, Any]) -> str | None:
    """The program a family capability names (``shell.exec.ls`` -> ``ls``), else the
    first program of its whitelist, else None."""
    if capability != family:
        return capability[len(family) + 1:]
    exes = entry.get("executables", entry.get("allowed_executables"))
    if isinstance(exes, list) and exes:
        return str(exes[0]).replace("\\", "/").rsplit("/", 1)[-1]
    return None


def manifest_container(entry: Mapping[str, Any]) -> str | None:
    """The first container a manifest entry's ``values.container`` allows, or None."""
    values = entry.get("values")
    containers = values.get("container") if isinstance(values, Mapping) else None
    return str(containers[0]) if isinstance(containers, list) and containers else None
