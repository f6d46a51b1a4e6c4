"""Stand-ins for the delivery wing's unit tests: a socket transport that records, stalls or
fails, a broker whose link a test can cut, and one worker's delivery wired on SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.connection import CloseCode, LiveConnection, SocketTimings
from realtime.delivery.dispatch import Delivery
from realtime.delivery.frames import PING_FRAME, ClientFrame, client_frame
from realtime.delivery.hub import Hub
from realtime.delivery.pending import MemoryPendingIndex, PendingIndex, PendingSessions
from realtime.delivery.presence import PresenceRecorder
from realtime.delivery.store import TeaserStore
from realtime.delivery.teaser import Draft
from realtime.delivery.waiting import HeldPolls
from realtime.fanout.activity import ActivityFeed
from realtime.fanout.backends.base import RESYNC, Event
from realtime.fanout.backends.memory import MemoryBackend
from realtime.fanout.broker import Broker
from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from realtime.platform.errors import BrokerUnavailable
from realtime.platform.metrics import Metrics

SITE = "shop"


class FakeClock:
    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 2.0) -> None:
    """Wait until `predicate` holds, looking every few milliseconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = predicate()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        await asyncio.sleep(0.005)


def drafts(session_id: str, *texts: str, only_on_path: str | None = None) -> list[Draft]:
    return [Draft(session_id, text, only_on_path=only_on_path) for text in texts]


class SocketGone(Exception):
    """What a send on a socket that closed raises (like websockets' ConnectionClosed)."""


class FakeTransport:
    """A socket as LiveConnection sees it. It records the frames that reached the client and
    the close code it got; `stall()` makes sends wait (a client that stopped reading), and
    `fail_with()` makes them raise. Like a real socket, a close ends a stalled send."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.close_code: int | None = None
        self._failure: Exception | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def fail_with(self, failure: Exception) -> None:
        self._failure = failure

    async def send_text(self, data: str) -> None:
        await self._flowing.wait()
        if self._failure is not None:
            raise self._failure
        self.frames.append(data)

    async def close(self, code: int = CloseCode.NORMAL, reason: str | None = None) -> None:
        if self.close_code is not None:
            raise RuntimeError("the socket is already closed")
        self.close_code = code
        self._failure = SocketGone(code)
        self._flowing.set()

    @property
    def teasers(self) -> list[dict[str, Any]]:
        parsed = [orjson.loads(frame) for frame in self.frames]
        return [frame for frame in parsed if frame["type"] == "teaser"]

    @property
    def pings(self) -> int:
        return self.frames.count(PING_FRAME)


class FlakyBackend(MemoryBackend):
    """The in-process backend, with a link a test can cut (publish raises, as Redis's does)
    and with a deaf spell (`listening` false) and a reconnect (RESYNC) on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.link_up = True
        self.hears_others = True
        self.published: list[str] = []

    async def publish(self, channel: str, message: str) -> int:
        self.published.append(channel)
        if not self.link_up:
            raise BrokerUnavailable("the test cut the link")
        return await super().publish(channel, message)

    @property
    def listening(self) -> bool:
        return self.hears_others

    def reconnected(self) -> None:
        """What a Redis backend emits once its link is back: broadcasts may be lost."""
        self._published.put_nowait(Event(RESYNC, ""))


class FakeBroker(Broker):
    """The real Broker on a FlakyBackend."""

    def __init__(self) -> None:
        self.backend = FlakyBackend()
        super().__init__(backend=self.backend)


async def migrated_engine(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await upgrade(engine)
    return engine


@dataclass
class World:
    """One worker's delivery: store, broker, pending index, hub and Delivery."""

    clock: FakeClock
    store: TeaserStore
    broker: FakeBroker
    presence: PresenceRecorder
    metrics: Metrics
    activity: ActivityFeed
    pending: PendingSessions
    hub: Hub
    delivery: Delivery
    connections: list[LiveConnection] = field(default_factory=list)

    async def attach(
        self, session_id: str, path: str | None = None, since: int | None = None
    ) -> tuple[LiveConnection, FakeTransport]:
        transport = FakeTransport()
        connection = await self.hub.attach(SITE, session_id, transport, path, since)
        self.connections.append(connection)
        return connection, transport

    async def attach_settled(
        self, session_id: str, path: str | None = None
    ) -> tuple[LiveConnection, FakeTransport]:
        """Attached, and done with its first look in the store: a send may lease to it."""
        connection, transport = await self.attach(session_id, path)
        await eventually(lambda: connection.settled)
        return connection, transport

    @property
    def session_wakes(self) -> list[str]:
        """Channels published to wake sockets (not markers, not activity)."""
        return [c for c in self.broker.backend.published if c.startswith("teaser:s:")]


@asynccontextmanager
async def small_world(
    engine: AsyncEngine,
    timings: SocketTimings | None = None,
    index: PendingIndex | None = None,
) -> AsyncIterator[World]:
    clock = FakeClock()
    store = TeaserStore(engine, clock=clock)
    broker = FakeBroker()
    presence = PresenceRecorder(engine, clock=clock)
    metrics = Metrics()
    activity = ActivityFeed(broker)
    pending = PendingSessions(index or MemoryPendingIndex(clock), engine, broker, clock)
    hub = Hub(store, broker, presence, metrics, activity, pending, timings or SocketTimings())
    held = HeldPolls(capacity=100)
    delivery = Delivery(store, hub, presence, metrics, activity, pending, held, 8.0)
    world = World(clock, store, broker, presence, metrics, activity, pending, hub, delivery)
    await broker.connect()
    await pending.start()
    hub.start()
    try:
        yield world
    finally:
        for connection in world.connections:
            await hub.detach(connection)
        await hub.stop()
        with suppress(Exception):
            await store.close()
        await pending.stop()
        await broker.disconnect()


def said(frame: dict[str, object]) -> ClientFrame | None:
    """A frame as the socket reads it off the wire."""
    return client_frame(orjson.dumps(frame))
