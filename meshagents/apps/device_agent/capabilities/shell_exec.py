"""``shell.exec`` (and ``shell.exec.<program>``, and any capability with an executable
whitelist): run the argv the trust decision resolved, under the sandbox.

Never a shell: argv[0] is the whitelisted absolute path ``decide()`` returned and the
arguments are passed as they were signed, so ``;``, ``$( )``, backticks and newlines
are plain characters. Inside the sandbox the program sees its prefixes (and a declared
cwd) read-only; read-write only when the capability's ``limits`` hold ``write: 1``.
``visible`` paths are added read-only. Network: only when ``limits`` hold ``network: 1``.
"""

from __future__ import annotations

import os
from typing import Any

from meshagents.apps.device_agent import sandbox
from meshagents.apps.device_agent.capabilities.base import (
    TRUNCATION_NOTE,
    CapResult,
    Context,
    Handler,
    OfferFacts,
    decode,
)
from meshagents.capabilities.shell_exec import SPEC
from meshagents.trust.manifest import Decision
from meshagents.trust.models import DEFAULT_SEARCH_PATH, Capability

SYSTEMCTL_READ = ("status", "is-active", "is-enabled", "is-failed", "list-units", "list-timers", "show")


def _val(name: str) -> dict[str, Any]:
    return {"name": name, "arity": 1, "path": False}


JOURNALCTL_FLAGS: list[Any] = [
    "-b", "-k", "-r", "-x", "-e", "-q", "--no-pager", "--utc",
    _val("-u"), _val("-n"), _val("-p"), _val("-o"), _val("--since"), _val("--until"),
    _val("--lines"), _val("--unit"), _val("--priority"), _val("--output"),
]  # fmt: skip

#: program -> the offered manifest entry's constraints (flags, first arguments, views, approval);
#: why each is safe to offer: meshagents/apps/device_agent/offer.py
PROGRAMS: dict[str, dict[str, Any]] = {
    "ls": {"flags": ["-l", "-a", "-la", "-al", "-lh", "-lah", "-h", "-1", "-t", "-S", "-r"]},
    "df": {"flags": ["-h", "-k", "-T", "-hT", "-i"], "max_args": 6},
    "uptime": {"flags": ["-p", "-s"], "max_args": 1},
    "free": {"flags": ["-h", "-m", "-g", "-w"], "max_args": 2},
    "ip": {
        "flags": ["-br", "-4", "-6", "-s", "-d", "-j", "-c"],
        "subcommands": ["addr", "address", "link", "route", "neigh", "rule"],
        "limits": {"network": 1},
        "requires_approval": True,
        "max_args": 6,
    },
    "journalctl": {
        "flags": JOURNALCTL_FLAGS,
        "visible": ["/var/log/journal", "/run/log/journal", "/etc/machine-id"],
        "max_args": 12,
    },
    "systemctl": {
        "flags": ["--no-pager", "--all", "-a", "--failed", "-l", "--full", _val("--type"), _val("--state")],
        "subcommands": list(SYSTEMCTL_READ),
        "visible": ["/run/systemd", "/run/dbus/system_bus_socket"],
        "max_args": 8,
    },
}


def run(decision: Decision, ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None and decision.argv is not None
    # decide() resolved it inside a prefix (for a capability with prefixes): the one the
    # path arguments were checked against is the one the program runs in.
    cwd = decision.cwd
    dirs = tuple(cap.path_prefixes) + ((cwd,) if cap.cwd else ())
    writes = cap.limits.get("write", 0) >= 1
    plan = sandbox.SandboxPlan(
        argv=decision.argv,
        cwd=cwd,
        readable=() if writes else dirs,
        writable=dirs if writes else (),
        visible=tuple(cap.visible or ()),
        network=cap.limits.get("network", 0) >= 1,
        hidden=ctx.hidden,
    )
    res = sandbox.run(
        plan, timeout_s=decision.timeout_s, output_cap=decision.output_cap_bytes, use_bwrap=ctx.sandbox,
        on_output=ctx.on_output, on_start=ctx.on_start,
    )
    if res.error is not None:
        return CapResult("error", res.error, detail=res.error)
    text = decode(res.output)
    if res.truncated:
        text += TRUNCATION_NOTE.format(kept=len(res.output), total=res.total_bytes)
    mode = "bwrap" if res.sandboxed else "rlimits"
    if res.timed_out:
        return CapResult(
            "timeout", text, res.exit_code, res.truncated, f"killed after {decision.timeout_s} s ({mode})"
        )
    # It ran to its end: "ok" for the request, the program's own verdict is its exit code.
    return CapResult("ok", text, res.exit_code, res.truncated, f"exit {res.exit_code} ({mode})")


def _find(program: str) -> list[str]:
    out = []
    for d in DEFAULT_SEARCH_PATH:
        path = f"{d}/{program}"
        if os.path.isfile(path) and os.access(path, os.X_OK) and path not in out:
            out.append(path)
    return out


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    """``shell.exec.<program>`` for each of :data:`PROGRAMS` found in the fixed search path."""
    if facts.minimal:
        return []
    out: list[dict[str, Any]] = []
    for program, constraints in PROGRAMS.items():
        found = _find(program)
        if not found:
            continue
        entry: dict[str, Any] = {
            "name": f"{SPEC.name}.{program}",
            "description": f"run {program} (no shell)",
            "executables": found,
            "timeout_s": 30,
            "output_cap_bytes": 65536,
            **constraints,
        }
        if program == "ls":
            if not facts.listed:
                continue
            entry["path_prefixes"] = facts.listed
        out.append(entry)
    return out


def _whitelisted(cap: Capability) -> bool:
    # any capability with an executable whitelist (shell.exec, shell.exec.ls, system.reboot, ...)
    return bool(cap.executables) and not cap.name.startswith("docker.")


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer, matches=_whitelisted,
                  fallback=True, cancellable=True)
