"""Container logs: the last N lines, and a follow that is bounded in time and lines.

``follow`` is a generator the bot can relay line by line; it always ends, at the
first of ``max_lines`` lines, ``max_seconds`` seconds, or the container's end, and
closes the engine stream when it does (also when the consumer stops early).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from docker.models.containers import Container

from meshagents.docker.errors import docker_errors
from meshagents.docker.lines import LineSplitter, split_lines
from meshagents.docker.output import DEFAULT_CAP
from meshagents.errors import FnError

MAX_LINES = 10_000
MAX_FOLLOW_SECONDS = 3600.0


@dataclass(frozen=True)
class LogTail:
    container: str
    lines: list[str]
    truncated: bool


def check_bounds(lines: int, max_seconds: float | None = None) -> None:
    if not 0 <= lines <= MAX_LINES:
        raise FnError("rejected_args", f"lines must be in [0, {MAX_LINES}]")
    if max_seconds is not None and not 0 < max_seconds <= MAX_FOLLOW_SECONDS:
        raise FnError("rejected_args", f"follow seconds must be in (0, {MAX_FOLLOW_SECONDS:g}]")


def cap_lines(lines: list[str], output_cap: int) -> tuple[list[str], bool]:
    """Keep the *last* lines that fit in ``output_cap`` bytes: the newest matter most."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        size = len(line.encode()) + 1
        if used + size > output_cap:
            return kept[::-1], True
        kept.append(line)
        used += size
    return kept[::-1], False


def tail(
    container: Container,
    *,
    lines: int = 100,
    since: int | None = None,
    timestamps: bool = False,
    output_cap: int = DEFAULT_CAP,
) -> LogTail:
    """The last ``lines`` lines (stdout and stderr interleaved as the engine stored them)."""
    check_bounds(lines)
    name = container.name or container.id or "?"
    with docker_errors(container=name):
        raw = container.client.api.logs(
            container.id, stdout=True, stderr=True, tail=lines, since=since, timestamps=timestamps
        )
    kept, truncated = cap_lines(list(split_lines([raw])), output_cap)
    return LogTail(container=name, lines=kept, truncated=truncated)


def _pump(stream: Any, out: queue.Queue[Any]) -> None:
    try:
        for chunk in stream:
            out.put(chunk)
    except Exception as exc:  # closing the stream from the consumer side lands here
        out.put(exc)
    finally:
        out.put(None)


def follow(
    container: Container,
    *,
    max_lines: int = 100,
    max_seconds: float = 10.0,
    tail_lines: int = 0,
    since: int | None = None,
    timestamps: bool = False,
) -> Iterator[str]:
    """Yield new log lines until ``max_lines`` lines or ``max_seconds`` seconds have passed."""
    check_bounds(max_lines, max_seconds)
    check_bounds(tail_lines)
    name = container.name or container.id or "?"
    deadline = time.monotonic() + max_seconds
    with docker_errors(container=name):
        stream = container.client.api.logs(
            container.id,
            stdout=True,
            stderr=True,
            stream=True,
            follow=True,
            tail=tail_lines,
            since=since,
            timestamps=timestamps,
        )
    chunks: queue.Queue[Any] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(stream, chunks), daemon=True, name=f"logs-{name}")
    reader.start()
    splitter = LineSplitter()
    sent = 0
    try:
        while sent < max_lines:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                chunk = chunks.get(timeout=left)
            except queue.Empty:
                return
            if chunk is None or isinstance(chunk, Exception):
                # The container ended (or the stream broke): give out the partial last line.
                for line in splitter.flush()[: max_lines - sent]:
                    yield line
                return
            for line in splitter.feed(chunk):
                yield line
                sent += 1
                if sent >= max_lines:
                    return
    finally:
        stream.close()
        reader.join(timeout=1.0)
