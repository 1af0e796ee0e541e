"""Live output of a long-running request: one message, edited in place.

A request still running after ``LIVE_AFTER_S`` gets a notice replying to the operator's
command ("running … — !cancel <id>") with the output so far; the agent edits it
(``m.replace`` with ``m.new_content``, as Element edits) when new output came, at most
once per ``EDIT_INTERVAL_S``, and the final answer is the last edit. The room shows the
agent typing while it runs. Short requests never see any of this: one plain reply.

Pure parts (unit-tested)::

    Throttle(interval_s).wait_s(now) / .sent(now)      # at most one edit per interval
    running_text(capability, request_id, output, elapsed_s, limit) -> (body, html)
    edit_content(event_id, body, html, state) -> content     # an m.replace of event_id
    live_content(body, html, reply_to, request_id) -> content # the first live message

``LIVE_KEY`` marks the live message and its edits (``{"request_id", "state":
"running" | "final"}``), so a client waiting for "the answer" can skip the
placeholder and take the final edit.

:class:`Running` is one request's state, fed from the sandbox's reader thread
(``feed``) and read by the agent's loop; ``cancel`` kills its process group.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshagents.bus import LIVE_KEY as LIVE_KEY  # the contract lives in the bus module
from meshagents.bus import LiveMarker

LIVE_AFTER_S = 1.0
EDIT_INTERVAL_S = 1.0
TYPING_TIMEOUT_MS = 30_000
TYPING_REFRESH_S = 20.0
LIVE_TAIL_CHARS = 3000  # an edit carries the text four times (body, html, and their new_content)


class Throttle:
    """At most one send per ``interval_s`` (monotonic seconds passed in: no clock here)."""

    def __init__(self, interval_s: float = EDIT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.last: float | None = None

    def wait_s(self, now: float) -> float:
        """How long to wait before the next send is allowed (0: now)."""
        if self.last is None:
            return 0.0
        elapsed = now - self.last  # compared as a difference: last + interval - now can round to 0 early
        return 0.0 if elapsed >= self.interval_s else self.interval_s - elapsed

    def sent(self, now: float) -> None:
        self.last = now


def running_text(
    capability: str, request_id: str, output: str, elapsed_s: float, limit: int = LIVE_TAIL_CHARS
) -> tuple[str, str]:
    """(plain, HTML) of the live message: what runs, for how long, the output's tail."""
    head = f"⏳ {capability} (request {request_id}) running for {int(elapsed_s)} s — !cancel {request_id}"
    tail = output[-limit:] if len(output) > limit else output
    cut = len(output) > limit
    body, html_body = head, f"<p>{html.escape(head)}</p>"
    if tail:
        shown = ("…" if cut else "") + tail
        body += "\n```\n" + shown + ("" if shown.endswith("\n") else "\n") + "```"
        html_body += f"<pre><code>{html.escape(shown)}</code></pre>"
    return body, html_body


def live_content(body: str, html_body: str, reply_to: str | None, request_id: str) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html_body,
        LIVE_KEY: LiveMarker(request_id, "running").to_json(),
    }
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def edit_content(event_id: str, body: str, html_body: str, request_id: str, state: str) -> dict[str, Any]:
    """An edit of ``event_id``: the fallback (``* ``) for clients without edits, and
    ``m.new_content`` that replaces the message (the reply relation stays the original's)."""
    marker = LiveMarker(request_id, state).to_json()
    new = {"msgtype": "m.notice", "body": body, "format": "org.matrix.custom.html",
           "formatted_body": html_body, LIVE_KEY: marker}
    return {
        "msgtype": "m.notice",
        "body": "* " + body,
        "format": "org.matrix.custom.html",
        "formatted_body": "* " + html_body,
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        LIVE_KEY: marker,
    }


@dataclass
class Running:
    """One request while it runs: output so far, its kill switch, its live message."""

    request_id: str
    capability: str
    reply_to: str | None
    started: float
    loop: asyncio.AbstractEventLoop
    cancellable: bool = True  # it runs a process that a kill stops
    buf: bytearray = field(default_factory=bytearray)
    version: int = 0
    kill: Callable[[], None] | None = None
    cancelled_by: str | None = None
    event_id: str | None = None  # the live message, once sent
    throttle: Throttle = field(default_factory=Throttle)
    edit_times: list[float] = field(default_factory=list)  # monotonic, for tests and figures
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, chunk: bytes) -> None:
        """From the sandbox's reader thread."""
        with self.lock:
            self.buf.extend(chunk)
            self.version += 1
        self.loop.call_soon_threadsafe(self.changed.set)

    def on_start(self, kill: Callable[[], None]) -> None:
        with self.lock:
            self.kill = kill
            stop_now = self.cancelled_by is not None
        if stop_now:  # cancelled before the process existed
            kill()

    def text(self) -> str:
        with self.lock:
            return bytes(self.buf).decode("utf-8", "replace")

    def cancel(self, by: str) -> bool:
        """Kill it (now, or as soon as its process starts); False when it runs none."""
        if not self.cancellable:
            return False
        with self.lock:
            self.cancelled_by = by
            kill = self.kill
        if kill is not None:
            kill()
        return True
