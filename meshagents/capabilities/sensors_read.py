"""``sensors.read``: every temperature sensor of the device, in °C, by name."""

from __future__ import annotations

from meshagents.capabilities.plain import no_args_spec

SPEC = no_args_spec("sensors.read", "sensors.read", "temperatures in °C, by sensor name", ("temps",))
