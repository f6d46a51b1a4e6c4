"""Token buckets, per key, in this worker's memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from realtime.platform.errors import RateLimited

MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows `burst` at once and `rate` per second after that, for each key."""

    def __init__(
        self,
        what: str,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.what = what
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        # Least recently used first: every take moves its key to the end.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, cost: int = 1) -> None:
        """Spend `cost` tokens for `key`, or raise RateLimited saying when to retry.
        A limiter with rate 0 is switched off."""
        if self.rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_least_recent()
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < cost:
            raise RateLimited(
                f"too many {self.what}; slow down",
                retry_after=(min(cost, self.burst) - bucket.tokens) / self.rate,
            )
        bucket.tokens -= cost

    def _forget_least_recent(self) -> None:
        # Memory is bounded by dropping the bucket touched longest ago, in O(1). Mostly it
        # has refilled, and a full bucket carries no information. When it has not, its key
        # gets back at most `burst` tokens early, and only after `max_keys` other keys came
        # since its last request, each with a full burst of its own: a flood of fresh keys
        # buys nothing it did not already have. A key that keeps asking moves to the end
        # each time, so a limited client stays limited unless `max_keys` other keys arrive
        # between two of its requests. Refusing new keys instead, to lose nothing, would let
        # such a flood lock every newcomer out.
        self._buckets.popitem(last=False)


class ConnectionQuota:
    """At most `limit` open connections per key (0: no limit)."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        if not self.try_acquire(key):
            raise RateLimited(f"too many {self.what}", retry_after=5)

    def try_acquire(self, key: str) -> bool:
        held = self._open.get(key, 0)
        if self.limit and held >= self.limit:
            return False
        self._open[key] = held + 1
        return True

    def release(self, key: str) -> None:
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)


class Limits:
    """Every per-worker limit of the public and sending endpoints, built from settings."""

    def __init__(
        self,
        *,
        sends_per_second: float,
        polls_per_session_per_minute: float,
        polls_per_ip_per_second: float,
        events_per_session_per_minute: float,
        events_per_ip_per_second: float,
        sockets_per_ip: int,
    ) -> None:
        self.sends = RateLimiter(
            "messages sent with this key", sends_per_second, burst=max(1, int(sends_per_second))
        )
        self.polls_per_session = RateLimiter(
            "polls for this session", polls_per_session_per_minute / 60, burst=10
        )
        self.polls_per_ip = RateLimiter(
            "polls from this address",
            polls_per_ip_per_second,
            burst=max(1, int(polls_per_ip_per_second * 5)),
        )
        # Bursty at page load (view, shown, click), a trickle after that.
        self.events_per_session = RateLimiter(
            "events for this session", events_per_session_per_minute / 60, burst=30
        )
        self.events_per_ip = RateLimiter(
            "events from this address",
            events_per_ip_per_second,
            burst=max(1, int(events_per_ip_per_second * 5)),
        )
        # A tab opens one session; a shop behind one office NAT opens many.
        self.sessions_per_ip = RateLimiter("new sessions from this address", rate=1, burst=60)
        self.sockets_per_ip = ConnectionQuota("open sockets from this address", sockets_per_ip)
        # A held poll is a connection too; past the quota, polls are answered at once.
        self.held_polls_per_ip = ConnectionQuota("held polls from this address", sockets_per_ip)
