"""``camera.snapshot``: one JPEG from the device's first camera."""

from __future__ import annotations

from meshagents.capabilities.plain import no_args_spec

SPEC = no_args_spec("camera.snapshot", "camera.snapshot", "one picture from the camera", ("snapshot",))
