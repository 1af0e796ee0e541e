"""Cap command output at a byte budget without splitting a UTF-8 character."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CAP = 64 * 1024


@dataclass(frozen=True)
class Capped:
    text: str
    truncated: bool
    total: int


def cap_bytes(data: bytes, cap: int) -> Capped:
    """The first ``cap`` bytes of ``data`` as text (invalid UTF-8 replaced)."""
    if cap < 0:
        raise ValueError("cap must be >= 0")
    if len(data) <= cap:
        return Capped(data.decode("utf-8", errors="replace"), False, len(data))
    # Step back off UTF-8 continuation bytes so no character is cut in half.
    k = cap
    while k > 0 and k > cap - 4 and (data[k] & 0xC0) == 0x80:
        k -= 1
    return Capped(data[:k].decode("utf-8", errors="replace"), True, len(data))


class CappedBuffer:
    """Collect a stream up to a cap, counting (and dropping) whatever comes after."""

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError("cap must be >= 0")
        self.cap = cap
        self._buf = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        # Keep a few bytes past the cap so cap_bytes can see where the last character ends.
        room = self.cap + 4 - len(self._buf)
        if room > 0:
            self._buf += chunk[:room]

    def result(self) -> Capped:
        return Capped(cap_bytes(bytes(self._buf), self.cap).text, self.total > self.cap, self.total)
