"""Matrix contents the agent sends (pure): result events, notices, status events.

A Matrix event is at most 64 KiB *after* encryption (base64 adds a third), so the
output put in one event is cut to ``limit`` bytes with a note, on top of the
capability's own cap; ``truncated`` is then true in the result event.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import replace
from typing import Any

from apps.device_agent.capabilities.base import cap_text
from apps.device_agent.pipeline import Outcome
from meshagents.bus import STATUS_EVENT

__all__ = ["STATUS_EVENT", "notice", "result_content", "status_content"]


def json_cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut so that its JSON form (what the event carries, escapes and all) fits
    in ``limit`` characters; a NUL costs six (``\\u0000``), so bytes are not enough."""
    if len(json.dumps(text)) <= limit:
        return text, False
    text, _ = cap_text(text, limit)  # the UTF-8 cut first: never longer than needed
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix whose JSON form fits, note included
        mid = (lo + hi + 1) // 2
        if len(json.dumps(text[:mid])) + len(_NOTE) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + _NOTE, True


_NOTE = "\n[output truncated to fit one Matrix event]"


def _cut(outcome: Outcome, limit: int) -> tuple[str, bool]:
    text = outcome.output
    # Keep the capability's own note ("[output truncated: K of N bytes shown]") at the end.
    at = text.rfind("\n[output truncated:") if outcome.truncated else -1
    tail = text[at:] if at >= 0 else ""
    head = text[:at] if at >= 0 else text
    cut_head, cut = json_cut(head, max(256, limit - len(json.dumps(tail))))
    return cut_head + tail, cut or outcome.truncated


def result_content(outcome: Outcome, limit: int) -> dict[str, Any]:
    """``org.meshagents.result`` content, as ``meshagents/bus.py`` defines it."""
    output, truncated = _cut(outcome, limit)
    if outcome.status != "ok" and not output:
        output = outcome.reason  # readers of "output" alone (the bot's alerts) see why
    return {
        "request_id": outcome.request_id,
        "device_id": outcome.device_id,
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "output": output,
        "truncated": truncated,
        "audit_seq": outcome.audit_seq,
        "duration_ms": outcome.duration_ms,
        "reason": outcome.reason,
        "capability": outcome.capability,
    }


def notice(outcome: Outcome, limit: int) -> tuple[str, str]:
    """(plain body, HTML body) of the readable ``m.notice``."""
    output, truncated = _cut(outcome, limit)
    rid = outcome.request_id or "?"
    if outcome.status == "ok":
        head = f"{outcome.capability} [{rid}]: ok"
        if outcome.exit_code not in (None, 0):
            head += f" (exit {outcome.exit_code})"
    else:
        head = f"{outcome.capability or 'request'} [{rid}]: {outcome.status} — {outcome.reason}"
    body = head
    html_body = html.escape(head)
    # The notice carries the output twice (plain and HTML): half the budget each.
    output, cut = _cut(replace(outcome, output=output), limit // 2)
    truncated = truncated or cut
    if output:
        body += "\n```\n" + output + ("" if output.endswith("\n") else "\n") + "```"
        html_body += f"<pre><code>{html.escape(output)}</code></pre>"
    if truncated:
        body += "\n(output truncated)"
        html_body += "<p><em>(output truncated)</em></p>"
    return body, html_body


def status_content(
    device_id: str, state: str, detail: str, now: float | None = None, *, sandbox: str | None = None
) -> dict[str, Any]:
    """``sandbox``: ``bwrap`` or ``weak`` (no isolation; the bot's !help and the dashboard say so)."""
    out: dict[str, Any] = {
        "device_id": device_id,
        "state": state,
        "ts": int((time.time() if now is None else now) * 1000),
        "detail": detail,
    }
    if sandbox is not None:
        out["sandbox"] = sandbox
    return out
