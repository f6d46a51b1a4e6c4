"""Which sessions may have something waiting, so that a poll for a session with nothing
pending (nearly every poll) answers without touching the database, or Redis.

The store stays the truth: a marker only ever says "maybe". It is set after a send
commits and lives until that message's expiry (never shortened), and it is rebuilt
from the store at start and whenever a worker may have missed one."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import suppress

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.fanout.backends.base import RESYNC, Event
from realtime.fanout.broker import Broker
from realtime.platform.clock import Clock, now_ms
from realtime.platform.errors import BrokerUnavailable
from realtime.platform.tables import teaser_messages as messages

logger = logging.getLogger("teaser.pending")

Marker = tuple[str, str, int]  # site, session, until (epoch ms)
MarkedHook = Callable[[str, str], None]  # site, session
INDEX_CHANNEL = "teaser:pending-index"
PAUSE_AFTER_FAILURE = 5.0


class MarkerNotShared(Exception):
    """The other workers could not be told of a marker."""


class PendingIndex(ABC):
    @abstractmethod
    async def mark(self, markers: Iterable[Marker]) -> None:
        """Markers of a send, for every worker."""

    @abstractmethod
    def restore(self, markers: Iterable[Marker]) -> None:
        """Markers read from the store, for this worker (each worker reads its own)."""

    @abstractmethod
    def heard(self, message: str) -> None:
        """Markers another worker broadcast."""

    @abstractmethod
    def may_have(self, site_id: str, session_id: str) -> bool: ...

    on_marked: MarkedHook | None

    @abstractmethod
    def prune(self) -> None: ...


class MemoryPendingIndex(PendingIndex):
    """For one worker without Redis."""

    def __init__(self, clock: Clock = now_ms) -> None:
        self.clock = clock
        self._until: dict[tuple[str, str], int] = {}
        # Told of every marker set, from this worker or another (the held polls).
        self.on_marked: MarkedHook | None = None

    async def mark(self, markers: Iterable[Marker]) -> None:
        self.restore(markers)

    def heard(self, message: str) -> None:
        """One worker: nobody else broadcasts."""

    def restore(self, markers: Iterable[Marker]) -> None:
        marked = self.on_marked
        for site_id, session_id, until in markers:
            key = (site_id, session_id)
            self._until[key] = max(until, self._until.get(key, 0))
            if marked is not None:
                marked(site_id, session_id)

    def may_have(self, site_id: str, session_id: str) -> bool:
        until = self._until.get((site_id, session_id))
        if until is None:
            return False
        if until <= self.clock():
            del self._until[(site_id, session_id)]
            return False
        return True

    def prune(self) -> None:
        now = self.clock()
        self._until = {key: until for key, until in self._until.items() if until > now}

    def forget(self) -> None:
        self._until.clear()


class SharedPendingIndex(MemoryPendingIndex):
    """For several workers: each holds the whole index in memory, and a send's markers are
    broadcast to all of them over the broker. A poll then asks nobody; asking Redis had
    cost every poll a round trip. A worker that may have missed a broadcast (its Redis
    link dropped) hears RESYNC and rebuilds from the store."""

    def __init__(self, broker: Broker, clock: Clock = now_ms) -> None:
        super().__init__(clock)
        self.broker = broker

    async def mark(self, markers: Iterable[Marker]) -> None:
        markers = list(markers)
        self.restore(markers)  # this worker at once, whatever the broker does
        if not await self.broker.publish(INDEX_CHANNEL, orjson.dumps(markers).decode()):
            raise MarkerNotShared("the broker is unavailable")

    def heard(self, message: str) -> None:
        with suppress(orjson.JSONDecodeError, TypeError, ValueError):
            self.restore(
                (str(site), str(session), int(until))
                for site, session, until in orjson.loads(message)
            )


class PendingSessions:
    """The index, kept honest: any doubt (Redis unreachable, a marker not written) means
    "maybe", and the index is rebuilt from the store. After a failure, marking pauses
    briefly so sends never queue up behind a stuck link."""

    def __init__(
        self, index: PendingIndex, engine: AsyncEngine, broker: Broker, clock: Clock = now_ms
    ) -> None:
        self.index = index
        self.engine = engine
        self.broker = broker
        self.clock = clock
        self._trusted = False
        self._failed_at = float("-inf")
        self._doubted_at = float("-inf")  # the last time broadcasts may have been missed
        self._next_rebuild = 0.0
        self._rebuilding: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Listening before reading the store: a send is marked only after it commits, so
        # it is either in what the rebuild reads or in what this worker hears.
        await self.broker.add_listener(INDEX_CHANNEL, self._heard)
        await self.rebuild()

    async def stop(self) -> None:
        await self.broker.remove_listener(INDEX_CHANNEL, self._heard)
        if self._rebuilding is not None:
            self._rebuilding.cancel()
            with suppress(asyncio.CancelledError):
                await self._rebuilding

    def prune(self) -> None:
        """Drop markers that have expired."""
        self.index.prune()

    async def mark(self, markers: list[Marker]) -> None:
        if self._paused:
            return  # the store has it; the rebuild after the pause marks it
        try:
            await self.index.mark(markers)
        # The broker turns a lost link into BrokerUnavailable (Broker.publish answers False).
        except (MarkerNotShared, BrokerUnavailable) as exc:
            logger.warning(
                "pending index not updated (%s); polls read the store until rebuilt", exc
            )
            self._failed()

    async def may_have(self, site_id: str, session_id: str) -> bool:
        if not self._trusted:
            await self._try_rebuild()
        # Deaf to other workers (Redis is away): their sends could be anywhere.
        if not self.trusted:
            return True
        return self.index.may_have(site_id, session_id)

    @property
    def trusted(self) -> bool:
        """Whether a session without a marker surely has nothing waiting (and a held poll
        is surely woken when it gets something)."""
        return self._trusted and self.broker.listening

    async def rebuild(self) -> None:
        """Mark every session with something pending, from the store. Trusted afterwards
        only if no marker failed and no broadcast was missed meanwhile (a send racing the
        rebuild is then covered)."""
        started = time.monotonic()
        now = self.clock()
        query = (
            select(messages.c.site_id, messages.c.session_id, func.max(messages.c.expires_at))
            .where(
                messages.c.settled_at.is_(None),  # read from the small unsettled index
                messages.c.consumed_at.is_(None),
                messages.c.expires_at > now,
            )
            .group_by(messages.c.site_id, messages.c.session_id)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        self.index.restore((site, session, int(until)) for site, session, until in rows)
        self._trusted = max(self._failed_at, self._doubted_at) < started

    @property
    def _paused(self) -> bool:
        return time.monotonic() < self._failed_at + PAUSE_AFTER_FAILURE

    def _failed(self) -> None:
        self._failed_at = time.monotonic()
        self._trusted = False

    async def _try_rebuild(self) -> None:
        # While Redis is away, polls read the store; try the index again now and then.
        if self._paused or time.monotonic() < self._next_rebuild:
            return
        self._next_rebuild = time.monotonic() + PAUSE_AFTER_FAILURE
        await self._rebuild_now()

    def _heard(self, event: Event) -> None:
        if event.channel != RESYNC:
            self.index.heard(event.message)
            return
        # Back after a dropped link: broadcasts may have been missed meanwhile, so the index
        # says "maybe" until a rebuild begun after now has read the store. Not throttled
        # like the retries while Redis is away: a second outage soon after a first one had
        # left its lost markers missing from a trusted index, for up to a purge interval.
        self._doubted_at = time.monotonic()
        self._trusted = False
        if self._rebuilding is None or self._rebuilding.done():
            self._rebuilding = asyncio.create_task(self._rebuild_now(), name="pending-rebuild")

    async def _rebuild_now(self) -> None:
        if self._paused:
            return  # marking is paused: the first poll after the pause rebuilds
        with suppress(Exception):
            await self.rebuild()
