"""Publishes to one Redis, gathered: every PUBLISH asked for while one pipeline is on its way
goes in the next, on one connection. A bulk send wakes or hands over to a hundred sessions
at once, and 32 such sends at once had opened a connection per PUBLISH (redis-py's pool
has no bound): thousands of connects, and replies late enough to trip the publish timeout,
which then paused publishing for everyone. Group commit, for the broker."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from realtime.fanout.backends.redis_link import twice

Pending = tuple[str, str, "asyncio.Future[int]"]


class GatheredPublisher:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiting: list[Pending] = []
        self._sending: asyncio.Task[None] | None = None

    async def publish(self, channel: str, message: str) -> int:
        """How many subscribers the channel had; raises what the pipeline raised."""
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((channel, message, answer))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_all())
        return await answer

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    counts = await twice(self._pipeline, batch)
                except Exception as exc:
                    for _, _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (_, _, answer), count in zip(batch, counts, strict=True):
                    if not answer.done():
                        answer.set_result(int(count))
        finally:
            self._sending = None

    async def _pipeline(self, batch: list[Pending]) -> list[int]:
        pipe = self._client.pipeline(transaction=False)
        for channel, message, _ in batch:
            pipe.publish(channel, message)
        return list(await pipe.execute())
