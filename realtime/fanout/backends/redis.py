from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from realtime.fanout.backends.base import RESYNC, BrokerBackend, Event
from realtime.platform.errors import BrokerUnavailable

logger = logging.getLogger("teaser.broker.redis")

# Always subscribed, so the pub/sub connection exists (and is pinged) before any session.
CONTROL_CHANNEL = "teaser:control"
LINK_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
SUBSCRIBE_TIMEOUT = 5.0


class RedisBackend(BrokerBackend):
    """Redis pub/sub. The listener reconnects by itself with capped, jittered backoff,
    resubscribes every channel and then asks every local listener to re-read the database."""

    def __init__(
        self,
        url: str,
        *,
        idle_ping_after: float = 10.0,
        dead_after: float = 30.0,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        publish_timeout: float = 1.0,
        publish_pause: float = 5.0,
    ) -> None:
        self._client = aioredis.from_url(
            url, socket_timeout=dead_after, socket_connect_timeout=2.0, health_check_interval=0
        )
        # A send has committed before it publishes: never hold its answer on a stuck link.
        self._publisher = aioredis.from_url(
            url, socket_timeout=publish_timeout, socket_connect_timeout=publish_timeout
        )
        self._publish_pause = publish_pause
        self._publish_paused_until = 0.0
        self._pubsub: PubSub | None = None
        self._channels: set[str] = set()
        self._lock = asyncio.Lock()
        self._idle_ping_after = idle_ping_after
        self._dead_after = dead_after
        self._backoff = (backoff_min, backoff_max)
        self._last_heard = time.monotonic()
        self._pinged = False

    async def connect(self) -> None:
        try:
            await self._open_pubsub()
        except LINK_ERRORS as exc:
            logger.error("Redis is unreachable (%s); retrying in the background.", exc)

    async def disconnect(self) -> None:
        await self._close_pubsub()
        await self._client.aclose()
        await self._publisher.aclose()

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.add(channel)
            await self._send_or_drop("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.discard(channel)
            await self._send_or_drop("unsubscribe", channel)

    async def publish(self, channel: str, message: str) -> None:
        # After a failure, fail fast for a while (a circuit breaker): local listeners still
        # hear it, and other workers re-read the store once per poll interval meanwhile.
        if time.monotonic() < self._publish_paused_until:
            raise BrokerUnavailable("Redis publish paused after a recent failure")
        try:
            try:
                await self._publisher.publish(channel, message)
            except RedisConnectionError:
                # A pooled connection that Redis closed (it restarted) fails its first
                # command; the pool opens a new one for the second. A stall (a timeout)
                # is not tried twice: the send would wait for it twice.
                await self._publisher.publish(channel, message)
        except LINK_ERRORS as exc:
            self._publish_paused_until = time.monotonic() + self._publish_pause
            raise BrokerUnavailable(f"Redis publish failed: {exc}") from exc

    @property
    def listening(self) -> bool:
        return self._pubsub is not None

    async def healthy(self) -> bool:
        if self._pubsub is None or time.monotonic() < self._publish_paused_until:
            return False
        try:
            return bool(await asyncio.wait_for(self._client.ping(), timeout=1.0))
        except LINK_ERRORS:
            return False

    async def next_published(self) -> Event:
        while True:
            if self._pubsub is None:
                await self._reconnect()
                return Event(channel=RESYNC, message="")
            event = await self._read_once(self._pubsub)
            if event is not None:
                return event

    async def _read_once(self, pubsub: PubSub) -> Event | None:
        try:
            raw = await pubsub.get_message(timeout=1.0)
            if raw is None:
                await self._ping_if_idle(pubsub)
                return None
        except LINK_ERRORS as exc:
            logger.warning("Redis pub/sub link lost (%s); reconnecting.", exc)
            await self._close_pubsub()
            return None
        self._heard()
        return _as_event(raw)

    async def _ping_if_idle(self, pubsub: PubSub) -> None:
        silent = time.monotonic() - self._last_heard
        if silent > self._dead_after:
            raise TimeoutError(f"no answer from Redis for {silent:.0f}s")
        if silent > self._idle_ping_after and not self._pinged:
            self._pinged = True
            await pubsub.ping()

    def _heard(self) -> None:
        self._last_heard = time.monotonic()
        self._pinged = False

    async def _reconnect(self) -> None:
        low, high = self._backoff
        step = 0
        while True:
            # Full jitter: a fleet of workers does not reconnect in lockstep.
            await asyncio.sleep(low + random.uniform(0, min(high, low * 2**step)))
            try:
                await self._open_pubsub()
                logger.info(
                    "Redis pub/sub reconnected; %d channels resubscribed.", len(self._channels)
                )
                self._publish_paused_until = 0.0  # the link is proven good again
                return
            except LINK_ERRORS as exc:
                step += 1
                logger.warning("Redis reconnect failed (%s); attempt %d.", exc, step)

    async def _open_pubsub(self) -> None:
        async with self._lock:
            pubsub = self._client.pubsub()
            channels = {CONTROL_CHANNEL, *self._channels}
            try:
                await pubsub.subscribe(*channels)
                await _confirmed(pubsub, len(channels))
            except BaseException:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            self._pubsub = pubsub
            self._heard()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except LINK_ERRORS:
                pass

    async def _send_or_drop(self, command: str, channel: str) -> None:
        if self._pubsub is None:
            return  # the reconnect resubscribes from self._channels
        try:
            await getattr(self._pubsub, command)(channel)
        except LINK_ERRORS as exc:
            logger.warning("Redis %s failed (%s); reconnecting.", command, exc)
            await self._close_pubsub()


async def _confirmed(pubsub: PubSub, channels: int) -> None:
    """Wait until Redis has confirmed all `channels` subscriptions. Until then a publish to
    one of them reaches nobody, and the resync that follows a reconnect only covers what
    was sent before it. A message that arrives meanwhile is dropped: that resync covers it."""
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        raw = await pubsub.get_message(timeout=left)
        if raw is not None and raw["type"] == "subscribe" and raw["data"] >= channels:
            return
    raise TimeoutError(f"Redis did not confirm {channels} subscriptions in {SUBSCRIBE_TIMEOUT} s")


def _as_event(raw: dict[str, Any]) -> Event | None:
    if raw.get("type") != "message":
        return None
    channel, data = raw["channel"], raw["data"]
    return Event(
        channel=channel.decode() if isinstance(channel, bytes) else str(channel),
        message=data.decode() if isinstance(data, bytes) else str(data),
    )
