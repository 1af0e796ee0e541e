"""The capability table: one spec per capability (shared by the bot and the device),
one handler per spec on the device, and the tables both apps build from them."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents import capabilities
from meshagents.apps.agents_and_robots import commands
from meshagents.apps.agents_and_robots.help import render_help
from meshagents.apps.device_agent import capabilities as handlers
from meshagents.apps.device_agent.offer import capabilities_for
from meshagents.capabilities import SPECS, spec_for
from meshagents.trust.models import Capability

pytestmark = pytest.mark.unit


def test_specs_are_unique_and_consistent() -> None:
    names = [s.name for s in SPECS]
    words = [s.command for s in SPECS]
    aliases = [a for s in SPECS for a in s.aliases]
    assert len(set(names)) == len(names) and len(set(words)) == len(words)
    assert len(set(aliases)) == len(aliases) and not set(aliases) & set(words)
    for spec in SPECS:
        prefix = "!" + spec.command
        assert spec.usage.startswith(prefix) and spec.example.startswith(prefix), spec.name
        args = spec.parse(spec.example[len(prefix):].lstrip())
        assert set(args) <= set(spec.arguments), (spec.name, args)
        assert spec.parse(spec.render(args)) == args, spec.name


def test_spec_for_names_and_families() -> None:
    assert spec_for("fs.read") is capabilities.fs_read.SPEC
    assert spec_for("shell.exec.ls") is capabilities.shell_exec.SPEC
    assert spec_for("docker.container.exec.ps") is capabilities.docker_exec.SPEC
    assert spec_for("docker.container.logs.x") is None  # not a family
    assert spec_for("sensors.read") is capabilities.sensors_read.SPEC
    assert spec_for("gpio.toggle") is None


def test_every_spec_has_one_handler_and_every_handler_a_spec() -> None:
    specs = [h.spec for h in handlers.HANDLERS]
    assert sorted(s.name for s in specs) == sorted(s.name for s in SPECS)
    for handler in handlers.HANDLERS:
        assert capabilities.SPEC_BY_NAME[handler.spec.name] is handler.spec


def _cap(name: str, **fields: Any) -> Capability:
    return Capability.model_validate({"name": name, **fields})


@pytest.mark.parametrize(
    ("capability", "fields", "served_by"),
    [
        ("shell.exec.ls", {"executables": ["/usr/bin/ls"]}, "shell.exec"),
        ("shell.exec", {"executables": ["/usr/bin/ls"]}, "shell.exec"),
        ("system.reboot", {"executables": ["/usr/bin/true"]}, "shell.exec"),  # any whitelist runs as exec
        ("shell.exec.ls", {}, None),  # no whitelist: nothing to run
        ("fs.read", {"executables": ["/usr/bin/cat"]}, "fs.read"),  # a named handler wins over the fallback
        ("docker.container.exec.ps", {"executables": ["/bin/ps"]}, "docker.container.exec"),
        ("docker.container.exec", {}, "docker.container.exec"),
        ("docker.container.list", {"executables": ["/bin/ps"]}, "docker.container.list"),
        ("docker.container.logs", {}, "docker.container.logs"),
        ("sensors.read", {}, "sensors.read"),
        ("gpio.toggle", {}, None),
    ],
)
def test_dispatch_table(capability: str, fields: dict[str, Any], served_by: str | None) -> None:
    handler = handlers.handler_for(_cap(capability, **fields))
    assert (handler.spec.name if handler else None) == served_by
    assert handlers.cancellable(_cap(capability, **fields)) == (served_by == "shell.exec")


@pytest.mark.parametrize("level", ["minimal", "default", "docker"])
def test_every_offered_entry_is_served_by_a_handler(level: str) -> None:
    for entry in capabilities_for(level, home="/home/op", camera_available=True, protected=("/var/x",)):
        cap = Capability.model_validate(entry)
        assert handlers.handler_for(cap) is not None, entry["name"]


def test_the_bot_reads_every_spec() -> None:
    local = {s.name for s in commands.SPECS if s.capability is None}
    assert local == {"help", "status", "pending", "approve", "deny", "revoke"}
    by_capability = {s.capability: s for s in commands.SPECS if s.capability is not None}
    assert sorted(by_capability) == sorted(s.name for s in SPECS)
    for spec in SPECS:
        command = commands.parse(spec.example)
        assert isinstance(command, commands.Command) and command.capability == spec.name
        assert commands.parse(commands.render(command)) == command
    text = render_help("d", {"sensors.read": {}}).text
    assert "sensors.read: !temps — runs at once" in text
    assert "!temps" in render_help("d", {}).text  # listed as not offered
