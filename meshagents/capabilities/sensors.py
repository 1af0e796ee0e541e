"""``sensors``: thermal zones and power supplies from ``/sys/class``."""

from __future__ import annotations

from meshagents.capabilities.plain import no_args_spec

SPEC = no_args_spec("sensors", "sensors", "temperatures and batteries")
