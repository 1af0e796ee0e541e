"""Matrix contents the agent sends (pure): result events, notices, status events.

The event contents themselves are ``meshagents.bus``'s (``ResultEvent``, ``StatusEvent``):
this module decides what goes in them (cuts, previews) and renders the readable notice.

A Matrix event is at most 64 KiB *after* encryption (base64 adds a third), so the
output put in one event is cut to ``limit`` bytes with a note, on top of the
capability's own cap; ``truncated`` is then true in the result event.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, replace
from typing import Any

from meshagents.apps.device_agent.capabilities.base import cap_text
from meshagents.apps.device_agent.pipeline import Outcome
from meshagents.bus import STATUS_EVENT, Attachment, ResultEvent, StatusEvent

__all__ = ["STATUS_EVENT", "SentFile", "notice", "result_content", "status_content"]


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


@dataclass(frozen=True)
class SentFile(Attachment):
    """An output or file the agent sent as an encrypted ``m.file`` (attach.py): the result
    event's ``attachment`` (``meshagents.bus.Attachment``) and the notice's line about it."""

    def line(self) -> str:
        cut = ""
        if self.size < self.total:
            cut = f" (first {self.size} of {self.total} bytes: the attachment cap)"
        return f"the whole output follows as the encrypted file {self.name}: {self.size} bytes, " \
            f"sha256 {self.sha256}{cut}"


PREVIEW_CHARS = 2000  # inline head of an output that went as a file


def _preview(outcome: Outcome, sent: SentFile | None, binary: bool) -> Outcome:
    """The outcome as shown inline when ``sent`` carries the output: a head only."""
    if sent is None:
        return outcome
    cut = outcome.truncated or sent.size < sent.total
    if binary:
        return replace(outcome, output="", truncated=cut)
    text = outcome.output
    # the capability's own note ("[output truncated: K of N bytes shown]") stays at the end
    at = text.rfind("\n[output truncated:") if outcome.truncated else -1
    head, tail = (text[:at], text[at:]) if at >= 0 else (text, "")
    if len(head) > PREVIEW_CHARS:
        head = head[:PREVIEW_CHARS] + "\n[… the whole output is in the file]"
    return replace(outcome, output=head + tail, truncated=cut)


def result_content(
    outcome: Outcome, limit: int, sent: SentFile | None = None, *, binary: bool = False
) -> dict[str, Any]:
    """``org.meshagents.result`` content, as ``meshagents/bus.py`` defines it."""
    output, truncated = _cut(_preview(outcome, sent, binary), limit)
    if outcome.status != "ok" and not output:
        output = outcome.reason  # readers of "output" alone (the bot's alerts) see why
    return ResultEvent(
        request_id=outcome.request_id,
        device_id=outcome.device_id,
        status=outcome.status,
        exit_code=outcome.exit_code,
        output=output,
        truncated=truncated,
        audit_seq=outcome.audit_seq,
        duration_ms=outcome.duration_ms,
        reason=outcome.reason,
        capability=outcome.capability,
        attachment=sent,
    ).to_content()


def notice(
    outcome: Outcome, limit: int, sent: SentFile | None = None, *, binary: bool = False, note: str = ""
) -> tuple[str, str]:
    """(plain body, HTML body) of the readable ``m.notice``; with ``sent``, a head of
    the output and a line naming the file that carries all of it."""
    output, truncated = _cut(_preview(outcome, sent, binary), limit)
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
    if sent is not None:
        body += "\n" + sent.line()
        html_body += f"<p>{html.escape(sent.line())}</p>"
    if note:
        body += "\n" + note
        html_body += f"<p><em>{html.escape(note)}</em></p>"
    if truncated:
        body += "\n(output truncated)"
        html_body += "<p><em>(output truncated)</em></p>"
    return body, html_body


def status_content(
    device_id: str, state: str, detail: str, now: float | None = None, *, sandbox: str | None = None
) -> dict[str, Any]:
    """``sandbox``: ``bwrap`` or ``weak`` (no isolation; the bot's !help and the dashboard say so)."""
    ts = int((time.time() if now is None else now) * 1000)
    return StatusEvent(device_id, state, ts, detail, sandbox).to_content()
