"""How many sign-in tries may reach the password check, decided before any is hashed.

Three budgets: per address over every account (one address trying many accounts), per
account and address (one address guessing one password), and a back-off per account
over every address that doubles with each failure in a row and is capped, so no one can
keep an account's owner out for more than a short while: their own address keeps its
own budgets. A try refused here costs no Argon2 time. With Redis (or a Redis Cluster) the
counts are shared by every worker (the `limits` package, moving windows); without it, or
while Redis does not answer, they are kept in this worker's memory, which still limits,
only per worker.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from realtime.platform.errors import RateLimited
from realtime.platform.redis_urls import cluster_address, is_cluster

logger = logging.getLogger("teaser.sign_in")

T = TypeVar("T")
# A sign-in waits at most this long for Redis before counting in memory instead, and then
# leaves Redis alone this long before asking it again.
REDIS_TIMEOUT = 0.5
REDIS_RETRY_AFTER = 5.0
URI_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


@dataclass(frozen=True)
class Budget:
    # An office behind one address signs a few people in; a script tries many accounts.
    per_address: str = "10/minute;100/hour"
    per_account_address: str = "5/minute;20/hour"
    back_off_after: int = 10  # failures in a row on one account, from anywhere
    back_off_first: float = 1.0  # seconds; doubled with each further failure
    back_off_cap: float = 60.0
    failures_kept: int = 900  # seconds a run of failures is remembered


@dataclass
class _Counts:
    storage: Storage
    windows: MovingWindowRateLimiter


class SignInLimits:
    def __init__(
        self, redis_url: str | None, *, namespace: str, budget: Budget | None = None
    ) -> None:
        self.budget = budget or Budget()
        self.namespace = namespace
        self._per_address = parse_many(self.budget.per_address)
        self._per_pair = parse_many(self.budget.per_account_address)
        memory = MemoryStorage()
        self._memory = _Counts(memory, MovingWindowRateLimiter(memory))
        # What close() closes: redis-py's ConnectionPool or RedisCluster, imported only with
        # Redis.
        self._pool: Any = None
        self._shared: _Counts | None = None
        if redis_url:
            build = _cluster_storage if is_cluster(redis_url) else _redis_storage
            self._pool, shared = build(redis_url)
            self._shared = _Counts(shared, MovingWindowRateLimiter(shared))
        self._shared_down_until = 0.0

    async def check(self, site_id: str, email: str, address: str) -> None:
        """Count a try, or raise RateLimited (with when to retry) if it may not be made."""
        await self._on_counts(lambda counts: self._check(counts, site_id, email, address))

    async def failed(self, site_id: str, email: str, address: str) -> None:
        await self._on_counts(lambda counts: self._failed(counts, _account(site_id, email)))

    async def succeeded(self, site_id: str, email: str, address: str) -> None:
        """The account's budgets start again; the address's does not, so one good
        password of one's own buys no more tries at other accounts."""
        await self._on_counts(lambda counts: self._succeeded(counts, site_id, email, address))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def _check(self, counts: _Counts, site_id: str, email: str, address: str) -> None:
        account = _account(site_id, email)
        wait = await self._backing_off(counts, account)
        if wait > 0:
            raise RateLimited("too many failed sign-ins for this account; wait", wait)
        budgets = (
            (self._per_address, self._address_ids(address), "from this address"),
            (self._per_pair, self._pair_ids(account, address), "for this account"),
        )
        for items, ids, what in budgets:
            for item in items:
                if not await counts.windows.test(item, *ids):
                    raise await self._refusal(counts, item, ids, what)
        for items, ids, what in budgets:
            for item in items:
                if not await counts.windows.hit(item, *ids):
                    raise await self._refusal(counts, item, ids, what)

    async def _failed(self, counts: _Counts, account: str) -> None:
        budget = self.budget
        failures = await counts.storage.incr(self._key("failures", account), budget.failures_kept)
        beyond = failures - budget.back_off_after
        if beyond > 0:
            wait = min(budget.back_off_cap, budget.back_off_first * 2 ** (beyond - 1))
            until = self._key("backing-off", account)
            await counts.storage.clear(until)
            await counts.storage.incr(until, max(1, math.ceil(wait)))

    async def _succeeded(self, counts: _Counts, site_id: str, email: str, address: str) -> None:
        account = _account(site_id, email)
        for item in self._per_pair:
            await counts.windows.clear(item, *self._pair_ids(account, address))
        await counts.storage.clear(self._key("failures", account))
        await counts.storage.clear(self._key("backing-off", account))

    async def _backing_off(self, counts: _Counts, account: str) -> float:
        until = self._key("backing-off", account)
        if not await counts.storage.get(until):
            return 0.0
        return min(self.budget.back_off_cap, await counts.storage.get_expiry(until) - time.time())

    async def _refusal(
        self, counts: _Counts, item: RateLimitItem, ids: tuple[str, ...], what: str
    ) -> RateLimited:
        stats = await counts.windows.get_window_stats(item, *ids)
        wait = max(1.0, stats.reset_time - time.time())
        return RateLimited(f"too many sign-in attempts {what}; slow down", wait)

    async def _on_counts(self, job: Callable[[_Counts], Awaitable[T]]) -> T:
        """Run on Redis when there is one and it answers, else on this worker's memory:
        a sign-in is never refused, nor answered with a 500, because Redis is away."""
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                return await job(self._shared)
            except (StorageError, OSError, TimeoutError) as exc:
                self._shared_down_until = time.monotonic() + REDIS_RETRY_AFTER
                logger.warning(
                    "Redis did not answer for sign-in limits (%s); counting in this "
                    "worker's memory for the next %.0f s",
                    type(exc).__name__,
                    REDIS_RETRY_AFTER,
                )
        return await job(self._memory)

    def _address_ids(self, address: str) -> tuple[str, ...]:
        return (self.namespace, "address", _digest(address))

    def _pair_ids(self, account: str, address: str) -> tuple[str, ...]:
        return (self.namespace, "account-address", account, _digest(address))

    def _key(self, kind: str, account: str) -> str:
        return f"teaser-sign-in/{self.namespace}/{kind}/{account}"


def _redis_storage(redis_url: str) -> tuple[Any, Storage]:
    """Our own pool, so its timeouts are short, redis-py retries nothing (we fall back
    instead) and close() really closes it. Imported here: a worker without Redis never
    loads redis-py."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = ConnectionPool.from_url(
        redis_url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    scheme = redis_url.split("://", 1)[0]
    # `limits` types its client options as plain values, hence the Any.
    client: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(
        f"{URI_SCHEMES.get(scheme, 'async+redis')}://",
        implementation="redispy",
        wrap_exceptions=True,
        **client,
    )
    return pool, storage


def _cluster_storage(redis_url: str) -> tuple[Any, Storage]:
    """The same short timeouts and no retries, on a cluster. `limits` builds the cluster
    client itself (from the nodes in its URL and these options), so close() takes it from
    there; credentials and TLS go as options, as its URL has no `rediss+cluster`."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    address = cluster_address(redis_url)
    nodes = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in address.nodes)
    client: dict[str, Any] = {
        "username": address.username,
        "password": address.password,
        "ssl": address.tls,
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    storage = RedisClusterStorage(
        f"async+redis+cluster://{nodes}",
        implementation="redispy",
        wrap_exceptions=True,
        **client,
    )
    bridge: Any = storage.bridge  # its redis-py bridge; `limits` does not type the client
    return bridge.storage, storage


def _account(site_id: str, email: str) -> str:
    return _digest(f"{site_id}\0{email.strip().lower()}")


def _digest(text: str) -> str:
    # Redis keys name no e-mail address or IP address, only a digest of them.
    return hashlib.sha256(text.encode()).hexdigest()[:32]
