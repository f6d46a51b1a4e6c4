"""Live activity for dashboards: events, sends and deliveries, per site, through the same
broker as teasers. Batched (one publish per site per tick), so a busy site costs the
broker a few messages a second, not one per teaser."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import orjson

from realtime.fanout.backends.base import RESYNC
from realtime.fanout.broker import Broker, Subscriber
from realtime.fanout.channels import site_activity_channel

logger = logging.getLogger("teaser.activity")

MAX_BUFFERED = 1000  # per site per tick; beyond that a dashboard reloads from the API


@dataclass(frozen=True)
class ActivityBatch:
    items: list[dict[str, Any]]
    # Rows may be missing before these (a reconnected broker, a full queue, a full tick):
    # a dashboard reloads from the API.
    lost: bool


class ActivityFeed:
    def __init__(self, broker: Broker, *, tick: float = 0.2) -> None:
        self.broker = broker
        self.tick = tick
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    def announce(self, site_id: str, kind: str, **data: Any) -> None:
        buffered = self._pending[site_id]
        if len(buffered) < MAX_BUFFERED:
            buffered.append({"kind": kind, **data})

    @asynccontextmanager
    async def subscribe(self, site_id: str) -> AsyncIterator[AsyncIterator[ActivityBatch]]:
        """A site's activity from every worker, one batch per publishing tick."""
        async with self.broker.subscribe(site_activity_channel(site_id)) as subscriber:
            yield _batches(subscriber)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="activity-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(list)
        for site_id, items in pending.items():
            message = orjson.dumps(items).decode()
            try:
                await self.broker.publish(site_activity_channel(site_id), message)
            except Exception:  # a dashboard missing live rows must never fail a send
                logger.exception("could not publish activity for site %s", site_id)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            if self._pending:
                await self.flush()


async def _batches(subscriber: Subscriber) -> AsyncIterator[ActivityBatch]:
    dropped = subscriber.dropped
    async for event in subscriber:
        resync = event.channel == RESYNC
        items: list[dict[str, Any]] = [] if resync else orjson.loads(event.message or "[]")
        lost = resync or subscriber.dropped > dropped or len(items) >= MAX_BUFFERED
        dropped = subscriber.dropped
        yield ActivityBatch(items, lost)
