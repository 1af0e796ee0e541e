"""Matrix contents the agent sends (pure): result events, notices, status events.

A Matrix event is at most 64 KiB *after* encryption (base64 adds a third), so the
output put in one event is cut to ``limit`` bytes with a note, on top of the
capability's own cap; ``truncated`` is then true in the result event.
"""

from __future__ import annotations

import html
import time
from typing import Any

from apps.device_agent.capabilities.base import cap_text
from apps.device_agent.pipeline import Outcome
from meshagents.bus import STATUS_EVENT

__all__ = ["STATUS_EVENT", "notice", "result_content", "status_content"]


def _cut(outcome: Outcome, limit: int) -> tuple[str, bool]:
    text, cut = cap_text(outcome.output, limit)
    return text, cut or outcome.truncated


def result_content(outcome: Outcome, limit: int) -> dict[str, Any]:
    """``org.meshagents.result`` content, as ``meshagents/bus.py`` defines it."""
    output, truncated = _cut(outcome, limit)
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
    if output:
        body += "\n```\n" + output + ("" if output.endswith("\n") else "\n") + "```"
        html_body += f"<pre><code>{html.escape(output)}</code></pre>"
    if truncated:
        body += "\n(output truncated)"
        html_body += "<p><em>(output truncated)</em></p>"
    return body, html_body


def status_content(device_id: str, state: str, detail: str, now: float | None = None) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "state": state,
        "ts": int((time.time() if now is None else now) * 1000),
        "detail": detail,
    }
