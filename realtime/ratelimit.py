"""Token buckets, per key, in this worker's memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from realtime.errors import RateLimited

MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows `burst` at once and `rate` per second after that, for each key."""

    def __init__(
        self, what: str, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> None:
        """Spend one token for `key`, or raise RateLimited saying when to retry."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise RateLimited(
                f"too many {self.what}; slow down", retry_after=(1 - bucket.tokens) / self.rate
            )
        bucket.tokens -= 1

    def _forget_full(self, now: float) -> None:
        # Buckets that have refilled carry no information; drop them to bound memory.
        refill = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}
