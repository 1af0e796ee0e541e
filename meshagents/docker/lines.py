"""Pure helpers for log streams: line framing and the ``since`` argument."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from meshagents.errors import FnError

_RELATIVE = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LineSplitter:
    """Turn arbitrary byte chunks into complete lines (without their newline)."""

    def __init__(self, max_line_bytes: int = 16 * 1024) -> None:
        self._pending = bytearray()
        self.max_line_bytes = max_line_bytes

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += chunk
        out: list[str] = []
        while True:
            nl = self._pending.find(b"\n")
            if nl < 0:
                break
            out.append(self._decode(bytes(self._pending[:nl])))
            del self._pending[: nl + 1]
        # A runaway line with no newline is cut into pieces so memory stays bounded.
        while len(self._pending) >= self.max_line_bytes:
            out.append(self._decode(bytes(self._pending[: self.max_line_bytes])))
            del self._pending[: self.max_line_bytes]
        return out

    def flush(self) -> list[str]:
        if not self._pending:
            return []
        line = self._decode(bytes(self._pending))
        self._pending.clear()
        return [line]

    @staticmethod
    def _decode(raw: bytes) -> str:
        return raw.rstrip(b"\r").decode("utf-8", errors="replace")


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """All lines of a chunk stream, the last partial line included."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.flush()


def parse_since(value: str | int | float | None, now: float) -> int | None:
    """A unix time for ``since``: seconds (``1700000000``), relative (``10m``, ``2h``) or ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise FnError("rejected_args", "since must be a time, not a boolean")
    if isinstance(value, int | float):
        return int(value)
    text = value.strip()
    if text.isdigit():
        return int(text)
    m = _RELATIVE.match(text)
    if m:
        return int(now) - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FnError(
            "rejected_args", f"since {value!r}: use unix seconds, 30s/10m/2h/1d or ISO 8601"
        ) from exc
    if stamp.tzinfo is None:
        raise FnError("rejected_args", f"since {value!r} has no time zone (add Z or +00:00)")
    return int(stamp.timestamp())
