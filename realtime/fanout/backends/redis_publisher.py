"""Publishes gathered: every publish asked for while a batch is on its way goes in the next one,
sent as one pipeline on one connection. A bulk send wakes or hands over to a hundred sessions
at once, and 32 such sends at once had opened a connection per PUBLISH (redis-py's pool has
no bound): thousands of connects, and replies late enough to trip the publish timeout, which
then paused publishing for everyone. Group commit, for the broker. A Redis Cluster gathers
per master: each master's batches go on their own, all masters' at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from realtime.fanout.backends.redis_link import twice

Batch = list[tuple[str, str]]  # (channel, message)
# Sends one batch where it goes (a cluster's master; "" for one Redis): each publish's
# subscriber count, in order, or raises.
Send = Callable[[str, Batch], Awaitable[list[int]]]
Pending = tuple[str, str, "asyncio.Future[int]"]


class GatheredPublisher:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._waiting: dict[str, list[Pending]] = {}
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def publish(self, channel: str, message: str, to: str = "") -> int:
        """How many subscribers the channel had; raises what sending its batch raised. A
        batch to one place (`to`) that is slow or fails holds up no other place's."""
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(to, []).append((channel, message, answer))
        if to not in self._sending:
            self._sending[to] = asyncio.create_task(self._send_all(to))
        return await answer

    async def _send_all(self, to: str) -> None:
        try:
            while batch := self._waiting.pop(to, None):
                try:
                    counts = await self._send(
                        to, [(channel, message) for channel, message, _ in batch]
                    )
                except Exception as exc:
                    for *_, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (*_, answer), count in zip(batch, counts, strict=True):
                    if not answer.done():
                        answer.set_result(count)
        finally:
            del self._sending[to]


def publishing_on(client: aioredis.Redis) -> Send:
    """One Redis: a batch is one pipeline of PUBLISHes, sent once more on a connection that
    Redis had closed (it restarted)."""

    async def send(_: str, batch: Batch) -> list[int]:
        return await twice(_pipeline, client, batch)

    return send


async def _pipeline(client: aioredis.Redis, batch: Batch) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for channel, message in batch:
        pipe.publish(channel, message)
    return [int(count) for count in await pipe.execute()]
