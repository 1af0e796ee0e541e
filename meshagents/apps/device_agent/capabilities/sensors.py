"""``sensors``: thermal zones and power supplies from ``/sys/class``, or a clear
"not available" (containers, WSL, Termux without root, most VMs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts, cap_text
from meshagents.capabilities.sensors import SPEC
from meshagents.trust.manifest import Decision

SYS = Path("/sys/class")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def collect(root: Path = SYS) -> dict[str, Any]:
    thermal: list[dict[str, Any]] = []
    for zone in sorted((root / "thermal").glob("thermal_zone*")):
        temp = _read(zone / "temp")
        if temp is None or not temp.lstrip("-").isdigit():
            continue
        thermal.append({"zone": zone.name, "type": _read(zone / "type") or "?", "celsius": int(temp) / 1000})
    power: list[dict[str, Any]] = []
    psu = root / "power_supply"
    for supply in sorted(psu.iterdir()) if psu.is_dir() else []:
        entry: dict[str, Any] = {"name": supply.name, "type": _read(supply / "type") or "?"}
        for key in ("capacity", "status", "online"):
            value = _read(supply / key)
            if value is not None:
                entry[key] = int(value) if value.isdigit() else value
        power.append(entry)
    return {"thermal": thermal, "power_supply": power}


def render(data: dict[str, Any]) -> str:
    if not data["thermal"] and not data["power_supply"]:
        return "sensors: not available on this device (no thermal zones or power supplies in /sys)\n"
    lines = [f"{t['zone']} ({t['type']}): {t['celsius']:.1f} °C" for t in data["thermal"]]
    for p in data["power_supply"]:
        extra = ", ".join(f"{k} {p[k]}" for k in ("capacity", "status", "online") if k in p)
        lines.append(f"{p['name']} ({p['type']}): {extra or 'present'}")
    return "\n".join(lines) + "\n"


def run(decision: Decision, ctx: Context) -> CapResult:
    data = collect(Path(os.environ.get("MESHAGENTS_SYS_CLASS", str(SYS))))
    text, cut = cap_text(render(data), decision.output_cap_bytes)
    available = bool(data["thermal"] or data["power_supply"])
    return CapResult("ok", text, 0, cut, "sensors" if available else "not available", data=data)


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    return [{"name": SPEC.name, "description": "thermal zones and batteries from /sys", "timeout_s": 10}]


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
