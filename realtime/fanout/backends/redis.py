"""Redis pub/sub. Redis only says "look now": a worker that may have missed some of it (its
link broke, or its publish did not go out) makes every listener re-read the database."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, TypeVar

import redis.asyncio as aioredis

from realtime.fanout.backends.base import RESYNC, BrokerBackend, Event
from realtime.fanout.backends.redis_link import (
    CONTROL_CHANNEL,
    LINK_ERRORS,
    NEVER_RETRY,
    RESYNC_MESSAGE,
    TORN_DOWN_ERRORS,
    Link,
    LinkBroken,
    twice,
)
from realtime.fanout.backends.redis_publisher import GatheredPublisher, publishing_on
from realtime.platform.errors import BrokerUnavailable

logger = logging.getLogger("teaser.broker.redis")

T = TypeVar("T")


class RedisBackend(BrokerBackend):
    """The listener reconnects by itself with capped, jittered backoff, resubscribes every
    channel, and then asks every local listener to re-read the database (RESYNC). A link
    that stops answering (half-open) is found by a PING after `heartbeat` seconds of
    silence and dropped after `dead_after`: deaf for at most `dead_after + heartbeat`, and
    one `publish_timeout` more if it was paying a resync through the same stuck Redis."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 1.0,
        dead_after: float = 3.0,
        confirm_timeout: float = 5.0,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        publish_timeout: float = 1.0,
        publish_pause: float = 5.0,
        prefix: str = "",
    ) -> None:
        self._url = url
        # Every channel name on Redis starts with it, so deployments (or test runs) that
        # share one Redis hear none of each other's news, resyncs included.
        self._prefix = prefix
        self._control = prefix + CONTROL_CHANNEL
        # A send has committed before it publishes: never hold its answer on a stuck link.
        self._publisher = aioredis.from_url(
            url,
            socket_timeout=publish_timeout,
            socket_connect_timeout=publish_timeout,
            retry=NEVER_RETRY,
        )
        self._gathered = GatheredPublisher(publishing_on(self._publisher))
        self._publish_pause = publish_pause
        self._publish_paused_until = 0.0
        self._owe_resync = False
        self._link: Link | None = None
        self._channels: set[str] = set()
        # Keeps SUBSCRIBE and UNSUBSCRIBE in order, and a link's channels whole while it
        # is put in place.
        self._lock = asyncio.Lock()
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._confirm_timeout = confirm_timeout
        self._backoff = (backoff_min, backoff_max)

    async def connect(self) -> None:
        try:
            self._link = await self._open()
        except (LinkBroken, TimeoutError) as exc:
            logger.error("Redis is unreachable (%s); retrying in the background.", exc)

    async def disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        await self._publisher.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(self._prefix + channel)
        await self._send("subscribe", self._prefix + channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(self._prefix + channel)
        await self._send("unsubscribe", self._prefix + channel)

    async def publish(self, channel: str, message: str) -> int:
        # After a failure, fail fast for a while (a circuit breaker): local listeners still
        # hear it, other workers re-read the store once Redis carries the resync we owe.
        if time.monotonic() < self._publish_paused_until:
            self._owe_resync = True
            raise BrokerUnavailable("Redis publish paused after a recent failure")
        try:
            return await self._gathered.publish(self._prefix + channel, message)
        except (*LINK_ERRORS, *TORN_DOWN_ERRORS) as exc:
            self._publish_paused_until = time.monotonic() + self._publish_pause
            self._owe_resync = True
            raise BrokerUnavailable(f"Redis publish failed: {exc!r}") from exc

    @property
    def listening(self) -> bool:
        return self._link is not None

    async def healthy(self) -> bool:
        if self._link is None or time.monotonic() < self._publish_paused_until:
            return False
        try:
            async with asyncio.timeout(1.0):
                return bool(await twice(self._publisher.ping))
        except (*LINK_ERRORS, *TORN_DOWN_ERRORS):
            return False

    async def next_published(self) -> Event:
        while True:
            link = self._link
            if link is None:
                self._link = await self._reconnect()
                return Event(channel=RESYNC, message="")
            await self._pay_resync()
            try:
                event = await self._read(link)
            except LinkBroken as exc:
                await self._drop(link, exc)
                continue
            if event is not None:
                return event

    async def _read(self, link: Link) -> Event | None:
        raw = await link.call(link.pubsub.get_message, timeout=self._heartbeat)
        if raw is None:
            silent = time.monotonic() - link.last_heard
            if silent >= self._dead_after:
                raise LinkBroken(f"no answer from Redis for {silent:.1f} s (half-open)")
            await link.call(link.pubsub.ping)
            return None
        link.last_heard = time.monotonic()
        return self._as_event(raw)

    async def _pay_resync(self) -> None:
        """Tell every worker to re-read the store, once this worker's lost publishes can be
        followed by one that gets through."""
        if not self._owe_resync or time.monotonic() < self._publish_paused_until:
            return
        self._owe_resync = False
        try:
            await self.publish(CONTROL_CHANNEL, RESYNC_MESSAGE)
        except BrokerUnavailable:
            pass  # owed again, paid on a later turn

    async def _send(self, command: str, channel: str) -> None:
        async with self._lock:
            link = self._link
            if link is None:
                return  # the reconnect subscribes self._channels
            try:
                await link.call(getattr(link.pubsub, command), channel)
            except LinkBroken as exc:
                await self._drop(link, exc)

    async def _drop(self, link: Link, reason: LinkBroken) -> None:
        if self._link is link:
            self._link = None
            logger.warning("Redis pub/sub link lost (%s); reconnecting.", reason)
        await link.close()

    async def _reconnect(self) -> Link:
        low, high = self._backoff
        step = 0
        while True:
            # Full jitter: a fleet of workers does not reconnect in lockstep.
            await asyncio.sleep(low + random.uniform(0, min(high, low * 2**step)))
            try:
                link = await self._open()
            except (LinkBroken, TimeoutError) as exc:
                step += 1
                logger.warning("Redis reconnect failed (%s); attempt %d.", exc, step)
                continue
            logger.info("Redis pub/sub reconnected; %d channels resubscribed.", len(self._channels))
            self._publish_paused_until = 0.0  # the link is proven good again
            return link

    async def _open(self) -> Link:
        """A new link, subscribed to every channel and confirmed by Redis. Until then a
        publish to one of them reaches nobody, and the resync that follows a reconnect
        only covers what was sent before it."""
        link = Link(self._url, self._dead_after, f"{self._prefix}teaser-pubsub")
        try:
            async with asyncio.timeout(self._confirm_timeout):
                channels = {self._control, *self._channels}
                await link.call(link.pubsub.subscribe, *channels)
                await self._confirmed(link, len(channels))
                async with self._lock:
                    # What was joined or left while Redis confirmed, in order.
                    joined = self._channels - channels
                    left = channels - self._channels - {self._control}
                    if joined:
                        await link.call(link.pubsub.subscribe, *joined)
                    if left:
                        await link.call(link.pubsub.unsubscribe, *left)
                    link.last_heard = time.monotonic()
                    return link
        except BaseException:
            await link.close()
            raise

    async def _confirmed(self, link: Link, channels: int) -> None:
        """Wait until Redis has confirmed all `channels` subscriptions. A message that
        arrives meanwhile is dropped: the resync that follows covers it."""
        while True:
            raw = await link.call(link.pubsub.get_message, timeout=self._heartbeat)
            if raw is not None and raw["type"] == "subscribe" and raw["data"] >= channels:
                return

    def _as_event(self, raw: dict[str, Any]) -> Event | None:
        if raw.get("type") != "message":
            return None
        channel, data = raw["channel"], raw["data"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        message = data.decode() if isinstance(data, bytes) else str(data)
        if channel == self._control:
            return Event(channel=RESYNC, message="") if message == RESYNC_MESSAGE else None
        return Event(channel=channel.removeprefix(self._prefix), message=message)
