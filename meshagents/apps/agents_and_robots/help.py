"""``!help``: the room's device, its capability matrix and the commands, as plain text
and HTML (everything from the manifest or the message is escaped).

    render_help(device, view, room="device", topic=None) -> Rendered(text, html)

``view`` is the manifest-like mapping of ``commands.ManifestView``; a capability the
bot has no command for is still listed (the manifest is the truth), and a command
whose capability the device lacks is listed as not offered.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshagents import capabilities
from meshagents.apps.agents_and_robots.commands import (
    SPECS,
    CommandSpec,
    ManifestView,
    RoomKind,
    lookup,
)

_e = html.escape


@dataclass(frozen=True)
class Rendered:
    text: str
    html: str


def _constraint_notes(entry: Mapping[str, Any]) -> list[str]:
    """The constraints of a capability (the trust core's field names), in words."""
    notes: list[str] = []
    exes = entry.get("executables", entry.get("allowed_executables"))
    if isinstance(exes, list):
        notes.append("programs: " + (", ".join(str(x) for x in exes) if exes else "none"))
    prefixes = entry.get("path_prefixes")
    if isinstance(prefixes, list) and prefixes:
        notes.append("paths under: " + ", ".join(str(x) for x in prefixes))
    values = entry.get("values")
    if isinstance(values, Mapping):
        for key, choices in sorted(values.items()):
            if isinstance(choices, list):
                notes.append(f"{key}: " + (", ".join(str(c) for c in choices) or "none"))
    limits = entry.get("limits")
    if isinstance(limits, Mapping):
        for key, limit in sorted(limits.items()):
            notes.append(f"{key} up to {limit}")
    if isinstance(entry.get("timeout_s"), int):
        notes.append(f"timeout {entry['timeout_s']} s")
    if isinstance(entry.get("output_cap_bytes"), int):
        notes.append(f"output cap {entry['output_cap_bytes']} bytes")
    return notes


def _spec_for_capability(capability: str) -> CommandSpec | None:
    """``shell.exec.ls`` belongs to ``!exec`` just as ``shell.exec`` does (the capability
    specs say which capabilities are families)."""
    cap = capabilities.spec_for(capability)
    return next((s for s in SPECS if s.capability_spec is cap), None) if cap is not None else None


def _usage_and_example(spec: CommandSpec, capability: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    """Usage and an example that this manifest would let through where it can tell."""
    if spec.capability_spec is not None:
        return spec.capability_spec.usage_and_example(capability, entry)
    return spec.usage, spec.example


def render_help(device: str, view: ManifestView, *, room: RoomKind = "device",
                topic: str | None = None, sandbox: str | None = None) -> Rendered:
    """The answer to ``!help`` (or ``!help <command>``) in a room of ``device``.

    ``sandbox`` is what the agent's last status said: ``weak`` puts a warning first (its
    commands run without isolation, see docs/device_agent.md)."""
    if topic:
        return _render_topic(topic, view, room)
    if room == "approvals":
        return _render_approvals()
    text = [f"device {device}: what you can ask (capabilities from its signed manifest)"]
    if sandbox == "weak":
        text.insert(0, f"warning: {device} is UNSANDBOXED (sandbox: weak): commands run without isolation")
    rows: list[tuple[str, str, bool, list[str], str]] = []
    for cap in sorted(view):
        entry = view[cap]
        spec = _spec_for_capability(cap)
        usage, example = _usage_and_example(spec, cap, entry) if spec else ("(no bot command)", "")
        approval = bool(entry.get("requires_approval", False))
        rows.append((cap, usage, approval, _constraint_notes(entry), example))
    if not rows:
        text.append("  (this device's manifest offers no capabilities)")
    for cap, usage, approval, notes, example in rows:
        flag = "needs approval" if approval else "runs at once"
        text.append(f"  {cap}: {usage} — {flag}" + (f" ({'; '.join(notes)})" if notes else ""))
        if example:
            text.append(f"      e.g. {example}")
    offered = {spec.name for cap in view if (spec := _spec_for_capability(cap))}
    missing = [s for s in SPECS if s.capability and s.name not in offered and "device" in s.rooms]
    if missing:
        text.append("not offered on this device: " + ", ".join("!" + s.name for s in missing))
    local = [s for s in SPECS if s.capability is None and "device" in s.rooms]
    text.append("bot commands: " + ", ".join(s.usage for s in local))
    text.append("approvals: react 👍 or ✅ / 👎 or ❌ on the request in #operator-approvals, "
                "or !approve / !deny <id> there")

    items = []
    for cap, usage, approval, notes, example in rows:
        flag = "<strong>needs approval</strong>" if approval else "runs at once"
        extra = f"<br/><small>{_e('; '.join(notes))}</small>" if notes else ""
        ex = f"<br/>e.g. <code>{_e(example)}</code>" if example else ""
        items.append(f"<tr><td><code>{_e(cap)}</code></td><td><code>{_e(usage)}</code>{ex}{extra}</td>"
                     f"<td>{flag}</td></tr>")
    body = [f"<p><strong>device <code>{_e(device)}</code></strong>: what you can ask "
            "(capabilities from its signed manifest)</p>"]
    if sandbox == "weak":
        body.insert(0, f"<p><strong>warning: <code>{_e(device)}</code> is UNSANDBOXED</strong> "
                       "(sandbox: weak): its commands run without isolation</p>")
    if items:
        body.append("<table><tr><th>capability</th><th>command</th><th>approval</th></tr>"
                    + "".join(items) + "</table>")
    else:
        body.append("<p>this device's manifest offers no capabilities</p>")
    if missing:
        body.append("<p>not offered on this device: "
                    + ", ".join(f"<code>!{_e(s.name)}</code>" for s in missing) + "</p>")
    body.append("<p>bot commands: " + ", ".join(f"<code>{_e(s.usage)}</code>" for s in local) + "</p>")
    body.append("<p>approvals: react 👍 or ✅ / 👎 or ❌ on the request in #operator-approvals, or "
                "<code>!approve &lt;id&gt;</code> / <code>!deny &lt;id&gt;</code> there</p>")
    return Rendered("\n".join(text), "".join(body))


def _render_approvals() -> Rendered:
    specs = [s for s in SPECS if "approvals" in s.rooms]
    text = ["#operator-approvals: requests that need an operator's decision land here",
            *(f"  {s.usage} — {s.summary}" for s in specs),
            "react 👍 (or ✅) to approve or 👎 (or ❌) to deny on a request message; "
            "the first operator vote decides; requests expire after an hour"]
    items = "".join(f"<tr><td><code>{_e(s.usage)}</code></td><td>{_e(s.summary)}</td></tr>" for s in specs)
    body = ("<p><strong>#operator-approvals</strong>: requests that need an operator's decision land here</p>"
            f"<table><tr><th>command</th><th>what it does</th></tr>{items}</table>"
            "<p>react 👍 (or ✅) to approve or 👎 (or ❌) to deny on a request message; the first operator "
            "vote decides; requests expire after an hour</p>")
    return Rendered("\n".join(text), body)


def _render_topic(topic: str, view: ManifestView, room: RoomKind = "device") -> Rendered:
    spec = lookup(topic)
    if spec is None:
        return Rendered(f"no command {topic}; try !help", f"<p>no command <code>{_e(topic)}</code>; "
                        "try <code>!help</code></p>")
    lines = [f"{spec.usage} — {spec.summary}", f"e.g. {spec.example}"]
    if spec.capability and room == "device":
        caps = sorted(c for c in view if _spec_for_capability(c) == spec)
        if not caps:
            lines.append(f"capability {spec.capability}: not offered on this device")
        for cap in caps:
            entry = view[cap]
            flag = "needs approval" if entry.get("requires_approval") else "runs at once"
            notes = _constraint_notes(entry)
            detail = f" ({'; '.join(notes)})" if notes else ""
            lines.append(f"capability {cap}: {flag}{detail}")
    if spec.aliases:
        lines.append("also: " + ", ".join("!" + a for a in spec.aliases))
    body = "".join(f"<p>{_e(line)}</p>" for line in lines)
    return Rendered("\n".join(lines), body)
