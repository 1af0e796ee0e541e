"""Per-sender rate limits for commands: a token bucket per key, pure (``now`` passed in).

    limiter = RateLimiter(per_minute=120, burst=30)
    d = limiter.take("@alice:hub", now)   # Decision(allowed, retry_after_s, first_refusal)

Each sender has a bucket of ``burst`` tokens that refills at ``per_minute / 60`` per
second; a command takes one. When the bucket is empty the command is refused with
``retry_after_s`` (time until one token is back). ``first_refusal`` is True only for the
first refusal of a run of refusals, so the bot answers once ("slow down, retry in N s")
and then drops silently until the sender's bucket refills: a flood cannot make the bot
flood the room in return.

Memory stays bounded: a bucket that would be full again is the same as no bucket, so
:meth:`RateLimiter.forget` drops those (the bot calls it on its tick), and at most
``max_keys`` senders are tracked (the oldest-touched go first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    first_refusal: bool = False


@dataclass
class _Bucket:
    tokens: float
    at: float
    refused: bool = False


class RateLimiter:
    def __init__(self, *, per_minute: float = 120.0, burst: int = 30, max_keys: int = 10_000) -> None:
        if per_minute <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("per_minute must be > 0, burst and max_keys >= 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _level(self, bucket: _Bucket, now: float) -> float:
        # A clock that steps back never adds tokens (max with 0 elapsed).
        return min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate)

    def take(self, key: str, now: float) -> Decision:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        bucket.tokens, bucket.at = self._level(bucket, now), max(now, bucket.at)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refused = False
            return Decision(True)
        first = not bucket.refused
        bucket.refused = True
        return Decision(False, (1.0 - bucket.tokens) / self.rate, first)

    def forget(self, now: float) -> int:
        """Drop buckets that have refilled completely; how many went."""
        full = [k for k, b in self._buckets.items() if self._level(b, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
