"""``system.info``: host name, OS, kernel, uptime, load, memory and disk of ``/``."""

from __future__ import annotations

import os
import platform
import shutil
import socket
from typing import Any

from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts, cap_text
from meshagents.capabilities.system_info import SPEC
from meshagents.trust.manifest import Decision


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _os_name() -> str:
    text = _read("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return f"{platform.system()} {platform.release()}"


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * 1024
    return out


def collect() -> dict[str, Any]:
    """The facts, as data (also what the result event carries)."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": _os_name(),
        "kernel": platform.release(),
        "machine": platform.machine(),
    }
    uptime = _read("/proc/uptime")
    info["uptime_s"] = int(float(uptime.split()[0])) if uptime else None
    try:
        info["load"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load"] = None
    mem = _meminfo()
    info["memory"] = {"total": mem.get("MemTotal"), "available": mem.get("MemAvailable")} if mem else None
    try:
        du = shutil.disk_usage("/")
        info["disk"] = {"path": "/", "total": du.total, "used": du.used, "free": du.free}
    except OSError:
        info["disk"] = None
    return info


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / (1 << 30):.1f} GiB"


def render(info: dict[str, Any]) -> str:
    up = info.get("uptime_s")
    uptime = "?" if up is None else f"{up // 86400}d {up % 86400 // 3600}h {up % 3600 // 60}m"
    load = info.get("load")
    mem = info.get("memory") or {}
    disk = info.get("disk") or {}
    return (
        f"host: {info['host']}\nos: {info['os']} (kernel {info['kernel']}, {info['machine']})\n"
        f"uptime: {uptime}\nload: {' '.join(str(x) for x in load) if load else '?'}\n"
        f"memory: {_gib(mem.get('available'))} available of {_gib(mem.get('total'))}\n"
        f"disk /: {_gib(disk.get('free'))} free of {_gib(disk.get('total'))}\n"
    )


def run(decision: Decision, ctx: Context) -> CapResult:
    info = collect()
    text, cut = cap_text(render(info), decision.output_cap_bytes)
    return CapResult("ok", text, 0, cut, "system info", data=info)


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    return [{"name": SPEC.name, "description": "host, OS, uptime, load, memory, disk", "timeout_s": 10}]


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
