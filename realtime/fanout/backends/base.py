"""What a broker backend is: the interface and the data it hands back. Backends import
only this, so nothing points back at the broker that uses them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

# A backend that lost messages (a reconnect) emits an event on this channel; every local
# listener then re-reads the database, which is always correct.
RESYNC = "*resync*"


@dataclass(frozen=True)
class Event:
    channel: str
    message: str
    # A RESYNC for only the listeners of these channels (a cluster's shard came back: what
    # the others carried was never lost); None for every listener.
    channels: frozenset[str] | None = None


class BrokerBackend(ABC):
    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def disconnect(self) -> None: ...

    @abstractmethod
    async def subscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, message: str) -> int:
        """Publish; how many subscribers (workers) the channel had when it was published."""

    @abstractmethod
    async def next_published(self) -> Event: ...

    async def healthy(self) -> bool:
        """Whether published events currently reach other workers."""
        return True

    @property
    def listening(self) -> bool:
        """Whether this worker currently hears other workers' publishes."""
        return True
