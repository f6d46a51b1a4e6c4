from __future__ import annotations

import asyncio

from realtime.fanout.backends.base import BrokerBackend, Event


class MemoryBackend(BrokerBackend):
    """One process only: publish goes straight to this process's reader."""

    def __init__(self) -> None:
        self._channels: set[str] = set()
        self._published: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        self._channels.clear()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: str) -> int:
        if channel not in self._channels:
            return 0
        self._published.put_nowait(Event(channel=channel, message=message))
        return 1

    async def next_published(self) -> Event:
        return await self._published.get()
