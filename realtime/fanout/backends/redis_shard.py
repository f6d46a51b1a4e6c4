"""One shard of a Redis Cluster as a worker sees it: the pub/sub link to its master, the
channels this worker has there, and the task that reads the link."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis.crc import key_slot

from realtime.fanout.backends.redis_link import Link, LinkBroken

logger = logging.getLogger("teaser.broker.redis")

Heard = Callable[[str, str], None]


class Shard:
    def __init__(
        self,
        master: str,
        link: Link,
        *,
        heard: Heard,
        lost: Callable[[Shard, Iterable[str]], None],
        heartbeat: float,
        dead_after: float,
    ) -> None:
        self.master = master
        self.link = link
        self.channels: set[str] = set()
        self.broken = False
        self._heard = heard
        self._lost = lost
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._timing = (heartbeat, dead_after)

    async def open(self) -> None:
        """Connect, and read the link from then on; LinkBroken if it can't connect."""
        await self.link.call(self.link.pubsub.connect)
        self._reader = asyncio.create_task(self._read_forever(), name=self.master)

    async def join(self, channels: Iterable[str], confirm: float | None = None) -> bool:
        """Subscribe; with `confirm`, wait that long for the master to confirm each one
        (until then a publish to it reaches nobody). False if the link broke."""
        channels = [c for c in channels if c not in self.channels]
        if self.broken:
            return False
        loop = asyncio.get_running_loop()
        waiting = [self._confirming.setdefault(c, loop.create_future()) for c in channels]
        self.channels.update(channels)
        try:
            # One SSUBSCRIBE per slot: a command's channels must all hash to one.
            for group in _by_slot(channels):
                await self.link.call(self.link.pubsub.ssubscribe, *group)
            if confirm is not None and waiting:
                async with asyncio.timeout(confirm):
                    await asyncio.gather(*waiting)
        except (LinkBroken, TimeoutError) as exc:
            self._break(exc)
        return not self.broken

    async def leave(self, channel: str) -> None:
        self.channels.discard(channel)
        self._confirming.pop(channel, None)
        try:
            await self.link.call(self.link.pubsub.sunsubscribe, channel)
        except LinkBroken as exc:
            self._break(exc)

    async def close(self) -> None:
        self.broken = True
        if self._reader is not None:
            self._reader.cancel()
        await self.link.close()

    async def _read_forever(self) -> None:
        link, (heartbeat, dead_after) = self.link, self._timing
        try:
            while True:
                raw = await link.call(link.pubsub.get_message, timeout=heartbeat)
                if raw is not None:
                    link.last_heard = time.monotonic()
                    self._take(raw)
                elif (silent := time.monotonic() - link.last_heard) >= dead_after:
                    raise LinkBroken(f"no answer from Redis for {silent:.1f} s (half-open)")
                else:
                    await link.call(link.pubsub.ping)
        except LinkBroken as exc:
            self._break(exc)

    def _take(self, raw: dict[str, Any]) -> None:
        kind, channel = raw.get("type"), _text(raw.get("channel"))
        if kind == "smessage":
            self._heard(channel, _text(raw["data"]))
        elif kind == "ssubscribe":
            confirmed = self._confirming.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif kind == "sunsubscribe" and channel in self.channels:
            # Not asked for: the master gave the channel's slot away (resharding, or it
            # became a replica). Whoever owns it now takes the channel.
            self.channels.discard(channel)
            self._lost(self, [channel])

    def _break(self, reason: BaseException) -> None:
        if self.broken:
            return
        self.broken = True
        for waiting in self._confirming.values():
            if not waiting.done():
                waiting.set_exception(LinkBroken(str(reason)))
                waiting.exception()  # retrieved: nobody else may wait for it
        self._confirming.clear()
        logger.warning("Redis Cluster link to %s broken (%s).", self.master, reason)
        self._closing = asyncio.get_running_loop().create_task(self.link.close())
        self._lost(self, set(self.channels))


def _by_slot(channels: Iterable[str]) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for channel in channels:
        groups.setdefault(key_slot(channel.encode()), []).append(channel)
    return list(groups.values())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
