"""Fan-out between workers. The database holds messages; the broker only says "look now".

Shaped like encode/broadcaster: a backend is a tiny interface with one class per
implementation, picked by URL scheme; `Broker` multiplexes local listeners onto it,
subscribing a channel on its first listener and unsubscribing on its last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlparse

from realtime.fanout.backends.base import RESYNC, BrokerBackend, Event
from realtime.platform.errors import BrokerUnavailable
from realtime.platform.redis_urls import CLUSTER_SCHEMES

logger = logging.getLogger("teaser.broker")


def backend_from_url(url: str, prefix: str = "") -> BrokerBackend:
    scheme = urlparse(url).scheme
    if scheme == "memory":
        from realtime.fanout.backends.memory import MemoryBackend

        return MemoryBackend()
    if scheme in CLUSTER_SCHEMES:
        from realtime.fanout.backends.redis_cluster import RedisClusterBackend

        return RedisClusterBackend(url, prefix=prefix)
    if scheme in ("redis", "rediss", "unix"):
        from realtime.fanout.backends.redis import RedisBackend

        return RedisBackend(url, prefix=prefix)
    raise ValueError(
        f"Unsupported broker URL scheme '{scheme}'. Expected 'memory', 'redis' or 'redis+cluster'."
    )


Listener = Callable[[Event], None]


class Subscriber:
    """A local listener that queues events for a task to read: at most `capacity` of them."""

    def __init__(self, channel: str, capacity: int = 64) -> None:
        self.channel = channel
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=capacity)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def get(self) -> Event:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class Broker:
    def __init__(
        self, url: str = "memory://", *, prefix: str = "", backend: BrokerBackend | None = None
    ) -> None:
        """`prefix` starts every channel's name on Redis (TEASER_REDIS_PREFIX); `backend`,
        when given, is used instead of the one `url` names (tests pass one)."""
        self.url = url
        self._backend = backend or backend_from_url(url, prefix)
        self._listeners: dict[str, set[Listener]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self._backend.connect()
        self._reader = asyncio.create_task(self._read_forever(), name="broker-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._backend.disconnect()

    async def publish(self, channel: str, message: str = "") -> bool:
        """Publish; when the backend is down, still wake this worker's own listeners."""
        return await self.publish_counted(channel, message) is not None

    async def publish_counted(self, channel: str, message: str = "") -> int | None:
        """Publish, and say to how many workers (0: none listens to the channel); None
        when the backend is down, and only this worker's own listeners heard it."""
        try:
            return await self._backend.publish(channel, message)
        except BrokerUnavailable as exc:
            logger.debug("%s; delivering to local listeners only.", exc)
            self._dispatch(Event(channel=channel, message=message))
            return None

    async def healthy(self) -> bool:
        return await self._backend.healthy()

    @property
    def listening(self) -> bool:
        return self._backend.listening

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(channel)
        async with self.listen(channel, subscriber.offer):
            yield subscriber

    @asynccontextmanager
    async def listen(self, channel: str, listener: Listener) -> AsyncIterator[None]:
        await self.add_listener(channel, listener)
        try:
            yield
        finally:
            await self.remove_listener(channel, listener)

    async def add_listener(self, channel: str, listener: Listener) -> None:
        """Call `listener` (in the event loop, so it must not block) with each event on
        `channel`: no queue and no task per listener, which is what keeps an idle socket
        small. Every add is paired with a remove_listener."""
        listeners = self._listeners.setdefault(channel, set())
        listeners.add(listener)
        if len(listeners) == 1:
            try:
                await self._backend.subscribe(channel)
            except BaseException:
                await self.remove_listener(channel, listener)
                raise

    async def remove_listener(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[channel]
            with suppress(Exception):
                await self._backend.unsubscribe(channel)

    @property
    def channel_count(self) -> int:
        return len(self._listeners)

    async def _read_forever(self) -> None:
        while True:
            try:
                event = await self._backend.next_published()
            except Exception:
                # A backend handles its own link's failures; this is a bug in one. Stay
                # alive (a dead reader would leave this worker deaf for good, unnoticed)
                # and have every listener re-read the store, which is always right.
                logger.exception("the broker backend failed; listening again in a second")
                await asyncio.sleep(1.0)
                event = Event(channel=RESYNC, message="")
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        if event.channel == RESYNC:
            scope = self._listeners.keys() if event.channels is None else event.channels
            targets = [each for channel in scope for each in self._listeners.get(channel, ())]
        else:
            targets = list(self._listeners.get(event.channel, ()))
        for listener in targets:
            try:
                listener(event)
            except Exception:
                logger.exception("a listener of %s failed", event.channel)
