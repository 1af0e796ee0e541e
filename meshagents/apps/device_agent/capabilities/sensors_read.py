"""``sensors.read``: every temperature sensor the kernel exposes, in °C, by name.

Read in the agent process (no sandbox start: fixed paths under ``/sys/class``, nothing
from the request): thermal zones (``thermal/thermal_zone*/temp``, named
``<type>/<zone>``) and hwmon chips (``hwmon/hwmon*/temp*_input``, named
``<chip name>/<label or tempN>``), both in millidegrees. A name seen twice gets its
directory appended. Containers, WSL, most VMs and Termux without root have none: the
answer then says so (status ``ok``, detail ``not available``). The root is
``MESHAGENTS_SYS_CLASS`` when set (tests), ``/sys/class`` otherwise.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts, cap_text
from meshagents.capabilities.sensors_read import SPEC
from meshagents.trust.manifest import Decision

SYS = Path("/sys/class")
MAX_SENSORS = 256  # a bound on the answer, whatever the kernel lists
_MILLI = re.compile(r"-?[0-9]{1,9}")
_INPUT = re.compile(r"temp([0-9]+)_input")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _celsius(path: Path) -> float | None:
    text = _read(path)
    return int(text) / 1000 if text is not None and _MILLI.fullmatch(text) else None


def _number(path: Path) -> int:
    """temp2_input before temp10_input."""
    match = _INPUT.fullmatch(path.name)
    return int(match[1]) if match else 0


def _readings(root: Path) -> list[tuple[str, str, float]]:
    """(name, directory, °C) for every sensor that answers, in a stable order."""
    out: list[tuple[str, str, float]] = []
    for zone in sorted((root / "thermal").glob("thermal_zone*")):
        value = _celsius(zone / "temp")
        if value is not None:
            out.append((f"{_read(zone / 'type') or 'thermal'}/{zone.name}", zone.name, value))
    for chip in sorted((root / "hwmon").glob("hwmon*")):
        chip_name = _read(chip / "name") or chip.name
        for sensor in sorted(chip.glob("temp*_input"), key=_number):
            value = _celsius(sensor)
            if value is None:
                continue
            number = sensor.name[: -len("_input")]
            label = _read(chip / f"{number}_label") or number
            out.append((f"{chip_name}/{label}", chip.name, value))
    return out[:MAX_SENSORS]


def collect(root: Path = SYS) -> dict[str, float]:
    """Sensor name -> °C (a name seen twice gets `` (<directory>)`` appended)."""
    readings = _readings(root)
    seen: dict[str, int] = {}
    for name, _, _ in readings:
        seen[name] = seen.get(name, 0) + 1
    return {(name if seen[name] == 1 else f"{name} ({where})"): value for name, where, value in readings}


def render(celsius: dict[str, float]) -> str:
    if not celsius:
        return "sensors.read: no temperature sensors on this device (none in /sys/class/thermal or hwmon)\n"
    return "".join(f"{name}: {value:.1f} °C\n" for name, value in celsius.items())


def run(decision: Decision, ctx: Context) -> CapResult:
    celsius = collect(Path(os.environ.get("MESHAGENTS_SYS_CLASS", str(SYS))))
    text, cut = cap_text(render(celsius), decision.output_cap_bytes)
    detail = f"{len(celsius)} sensors" if celsius else "not available"
    return CapResult("ok", text, 0, cut, detail, data={"celsius": celsius})


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    # read-only and harmless: proposed at every level, the operator still signs it
    return [{"name": SPEC.name, "description": "temperatures in °C from /sys (thermal zones, hwmon)",
             "timeout_s": 10, "output_cap_bytes": 16384}]


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
