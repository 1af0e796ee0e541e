"""``sensors.read``: every temperature sensor of the device, in °C, by name.

The command is ``!temps``: ``!sensors.read`` would sit so close to ``!fs.read`` that a
typo of one would be offered the other ("did you mean ...").
"""

from __future__ import annotations

from meshagents.capabilities.plain import no_args_spec

SPEC = no_args_spec("sensors.read", "temps", "temperatures in °C, by sensor name", ("temperatures",))
