"""``system.info``: host, OS, uptime, load, memory and disk."""

from __future__ import annotations

from meshagents.capabilities.plain import no_args_spec

SPEC = no_args_spec("system.info", "info", "host, OS, uptime, load, memory, disk", ("system.info",))
