"""Which sessions may have something waiting, so that a poll for a session with nothing
pending (nearly every poll) answers without touching the database.

The store stays the truth: a marker only ever says "maybe". It is set after a send
commits and lives until that message's expiry (never shortened), and it is rebuilt
from the store at start and whenever Redis may have lost it."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import suppress

import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.broker import RESYNC, Broker
from realtime.brokers.redis import LINK_ERRORS
from realtime.clock import Clock, now_ms
from realtime.models import teaser_messages as messages

logger = logging.getLogger("teaser.pending")

Marker = tuple[str, str, int]  # site, session, until (epoch ms)
INDEX_CHANNEL = "teaser:pending-index"
PAUSE_AFTER_FAILURE = 5.0


class PendingIndex(ABC):
    @abstractmethod
    async def mark(self, markers: Iterable[Marker]) -> None: ...

    @abstractmethod
    async def may_have(self, site_id: str, session_id: str) -> bool: ...

    @abstractmethod
    async def close(self) -> None: ...


class MemoryPendingIndex(PendingIndex):
    """For one worker without Redis."""

    def __init__(self, clock: Clock = now_ms) -> None:
        self.clock = clock
        self._until: dict[tuple[str, str], int] = {}

    async def mark(self, markers: Iterable[Marker]) -> None:
        for site_id, session_id, until in markers:
            key = (site_id, session_id)
            self._until[key] = max(until, self._until.get(key, 0))

    async def may_have(self, site_id: str, session_id: str) -> bool:
        until = self._until.get((site_id, session_id))
        if until is None:
            return False
        if until <= self.clock():
            del self._until[(site_id, session_id)]
            return False
        return True

    async def close(self) -> None:
        self._until.clear()

    def prune(self) -> None:
        now = self.clock()
        self._until = {key: until for key, until in self._until.items() if until > now}


class RedisPendingIndex(PendingIndex):
    """Shared by every worker: a key per session that expires with its last message."""

    def __init__(self, url: str) -> None:
        self._client = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    async def mark(self, markers: Iterable[Marker]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for site_id, session_id, until in markers:
                key = _key(site_id, session_id)
                pipe.set(key, 1, nx=True, pxat=until)
                pipe.pexpireat(key, until, gt=True)  # a later expiry extends, never shortens
            await pipe.execute()

    async def may_have(self, site_id: str, session_id: str) -> bool:
        return bool(await self._client.exists(_key(site_id, session_id)))

    async def close(self) -> None:
        await self._client.aclose()


def _key(site_id: str, session_id: str) -> str:
    return f"teaser:pending:{site_id}:{session_id}"


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
        self._next_rebuild = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.rebuild()
        self._task = asyncio.create_task(self._rebuild_on_resync(), name="pending-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.index.close()

    def prune(self) -> None:
        """Drop markers that have expired (Redis does this by itself)."""
        if isinstance(self.index, MemoryPendingIndex):
            self.index.prune()

    async def mark(self, markers: list[Marker]) -> None:
        if self._paused:
            return  # the store has it; the rebuild after the pause marks it
        try:
            await self.index.mark(markers)
        except LINK_ERRORS as exc:
            logger.warning(
                "pending index not updated (%s); polls read the store until rebuilt", exc
            )
            self._failed()

    async def may_have(self, site_id: str, session_id: str) -> bool:
        if not self._trusted:
            await self._try_rebuild()
        if not self._trusted:
            return True
        try:
            return await self.index.may_have(site_id, session_id)
        except LINK_ERRORS:
            self._failed()
            return True

    async def rebuild(self) -> None:
        """Mark every session with something pending, from the store. Trusted afterwards
        only if no marker failed meanwhile (a send racing the rebuild is then covered)."""
        started = time.monotonic()
        now = self.clock()
        query = (
            select(messages.c.site_id, messages.c.session_id, func.max(messages.c.expires_at))
            .where(messages.c.consumed_at.is_(None), messages.c.expires_at > now)
            .group_by(messages.c.site_id, messages.c.session_id)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        try:
            await self.index.mark([(site, session, int(until)) for site, session, until in rows])
        except LINK_ERRORS as exc:
            logger.warning("pending index could not be rebuilt (%s); polls read the store", exc)
            self._failed()
            return
        self._trusted = self._failed_at < started

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
        with suppress(Exception):
            await self.rebuild()

    async def _rebuild_on_resync(self) -> None:
        async with self.broker.subscribe(INDEX_CHANNEL) as subscriber:
            async for event in subscriber:
                if event.channel == RESYNC:
                    await self._try_rebuild()
