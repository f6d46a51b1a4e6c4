"""Redis Cluster with sharded pub/sub (Redis 7: SPUBLISH, SSUBSCRIBE). A channel lives on
the shard that owns its hash slot: a publish goes to that shard's master and replicas, not
over the whole cluster bus as a plain PUBLISH would, so pub/sub load spreads over shards.

A worker holds one pub/sub link per master it has channels on. A link that breaks (its
master died, a slot moved away) is reopened on whichever node owns those slots by then, a
promoted replica, and only the listeners of its channels re-read the store. A publish that
failed pauses publishing to that master only, and its slots are named in the resync the
worker owes, so only the listeners of channels in them re-read.

Publishes are gathered per master (redis_publisher.py): those of one moment go to their
master in one pipeline, on one connection, every master's at once."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.fanout.backends.base import RESYNC, BrokerBackend, Event
from realtime.fanout.backends.redis_link import (
    CONTROL_CHANNEL,
    LINK_ERRORS,
    RESYNC_MESSAGE,
    TORN_DOWN_ERRORS,
    Link,
    LinkBroken,
    twice,
)
from realtime.fanout.backends.redis_publisher import Batch, GatheredPublisher
from realtime.fanout.backends.redis_shard import Shard
from realtime.platform.errors import BrokerUnavailable
from realtime.platform.redis_urls import cluster_address, cluster_client

logger = logging.getLogger("teaser.broker.redis")

# RedisClusterException: asking the cluster its shape found no node answering.
PUBLISH_ERRORS = (*LINK_ERRORS, *TORN_DOWN_ERRORS, RedisClusterException)


class RedisClusterBackend(BrokerBackend):
    """Links are (re)opened by one repair task with capped, jittered backoff, after asking
    the cluster its current shape; until then their channels are "orphans". A shard link
    is watched like the plain backend's link (a PING after `heartbeat` s of silence, dropped
    after `dead_after`)."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 1.0,
        dead_after: float = 3.0,
        confirm_timeout: float = 5.0,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        publish_timeout: float = 1.0,
        publish_pause: float = 5.0,
        prefix: str = "",
    ) -> None:
        self._address = cluster_address(url)
        self._prefix = prefix
        self._control = prefix + CONTROL_CHANNEL
        # Publishes and the cluster's shape (which master owns which slot). A MOVED patches
        # the shape from its answer: by default every 5th would close all connections to
        # every master, under the pipelines of the other masters on their way.
        self._cluster: RedisCluster = cluster_client(
            url, timeout=publish_timeout, reinitialize_steps=0
        )
        self._gathered = GatheredPublisher(self._spublish_all)
        self._publish_pause = publish_pause
        self._paused_until: dict[str, float] = {}  # per master
        self._stale: set[str] = set()  # masters whose connection failed: ask the cluster again
        self._owed_slots: set[int] = set()
        self._channels: set[str] = {self._control}
        self._shards: dict[str, Shard] = {}  # by master, "host:port"
        self._orphans: set[str] = set()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._repairing: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()  # one link per master, opened once
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._confirm_timeout = confirm_timeout
        self._backoff = (backoff_min, backoff_max)

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await self._cluster.initialize()
                await self._place({self._control}, resync=False)  # nothing to miss yet
        except (*PUBLISH_ERRORS, LinkBroken, TimeoutError) as exc:
            logger.error("Redis Cluster is unreachable (%s); retrying in the background.", exc)
            self._orphan([self._control])

    async def disconnect(self) -> None:
        if self._repairing is not None:
            self._repairing.cancel()
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        await self._cluster.aclose()

    async def subscribe(self, channel: str) -> None:
        channel = self._prefix + channel
        self._channels.add(channel)
        if not await self._join(channel):
            self._orphan([channel])

    async def _join(self, channel: str) -> bool:
        master = self._master_of(channel)
        if master is None or (self._orphans and master not in self._shards):
            return False  # the repair under way takes this channel too
        try:
            shard = await self._shard_of(master)
        except (LinkBroken, TimeoutError):
            return False
        return await shard.join([channel])

    async def unsubscribe(self, channel: str) -> None:
        channel = self._prefix + channel
        self._channels.discard(channel)
        self._orphans.discard(channel)
        for shard in self._shards.values():
            if channel in shard.channels:
                await shard.leave(channel)

    async def publish(self, channel: str, message: str) -> int:
        channel = self._prefix + channel
        master = self._master_of(channel)
        if master is None or time.monotonic() < self._paused_until.get(master, 0.0):
            self._owed_slots.add(key_slot(channel.encode()))
            raise BrokerUnavailable("Redis Cluster publish paused after a recent failure")
        try:
            return await self._gathered.publish(channel, message, to=master)
        except PUBLISH_ERRORS as exc:
            self._paused_until[master] = time.monotonic() + self._publish_pause
            self._owed_slots.add(key_slot(channel.encode()))
            raise BrokerUnavailable(f"Redis Cluster publish failed: {exc!r}") from exc

    async def _spublish_all(self, master: str, batch: Batch) -> list[int]:
        return await twice(self._spublish_pipeline, master, batch)

    async def _spublish_pipeline(self, master: str, batch: Batch) -> list[int]:
        """One master's batch, in one pipeline; redis-py's pipeline sends a command that met
        a MOVED or an ASK again by itself, to the master named. After a connection to this
        master failed, the cluster is asked its shape first, as redis-py does before its
        next command: a replica may have taken over."""
        if master in self._stale:
            await self._cluster.nodes_manager.initialize()
            self._stale.discard(master)
        pipe = self._cluster.pipeline(transaction=False)
        for channel, message in batch:
            pipe.spublish(channel, message)
        try:
            return [int(count) for count in await pipe.execute()]
        except (RedisConnectionError, RedisTimeoutError):
            self._stale.add(master)
            raise

    @property
    def listening(self) -> bool:
        return not self._orphans and bool(self._shards)

    async def healthy(self) -> bool:
        if not self.listening or any(time.monotonic() < t for t in self._paused_until.values()):
            return False
        try:
            async with asyncio.timeout(1.0):
                answer: Any = await self._cluster.ping(target_nodes=RedisCluster.PRIMARIES)
        except (*PUBLISH_ERRORS, AttributeError):
            return False
        # One answer per master, or already folded into one by redis-py's response policy.
        return all(answer.values()) if isinstance(answer, dict) else bool(answer)

    async def next_published(self) -> Event:
        while True:
            # Not wait_for: on Python 3.11 it swallows a cancel (the broker closing) that
            # comes as an event arrives, and the broker then waits for this forever.
            try:
                async with asyncio.timeout(self._heartbeat):
                    return await self._events.get()
            except TimeoutError:
                await self._pay_resync()

    # The shards' readers hand over what they hear.

    def _heard(self, channel: str, message: str) -> None:
        if channel != self._control:
            self._events.put_nowait(
                Event(channel=channel.removeprefix(self._prefix), message=message)
            )
        elif message.startswith(RESYNC_MESSAGE):
            self._resync(_slots(message.removeprefix(RESYNC_MESSAGE)))

    def _lost(self, shard: Shard, channels: Iterable[str]) -> None:
        """A shard's link broke (all its channels), or the cluster moved a slot away."""
        if self._shards.get(shard.master) is shard and shard.broken:
            del self._shards[shard.master]
            logger.warning("Redis Cluster shard %s lost; reconnecting.", shard.master)
        self._orphan(channels)

    def _orphan(self, channels: Iterable[str]) -> None:
        self._orphans.update(channel for channel in channels if channel in self._channels)
        if self._orphans:
            self._repair()

    def _resync(self, slots: set[int] | None, channels: Iterable[str] = ()) -> None:
        """Every listener re-reads the store (slots None), or those of channels in `slots`
        and of `channels`."""
        if slots is None:
            self._events.put_nowait(Event(channel=RESYNC, message=""))
            return
        scope = {c for c in self._channels if key_slot(c.encode()) in slots} | set(channels)
        scope.discard(self._control)
        if scope:
            names = frozenset(c.removeprefix(self._prefix) for c in scope)
            self._events.put_nowait(Event(channel=RESYNC, message="", channels=names))

    async def _pay_resync(self) -> None:
        """Ask the listeners of the slots this worker's lost publishes were for, on every
        worker, to re-read the store, once that publish can get through."""
        if not self._owed_slots:
            return
        owed, self._owed_slots = self._owed_slots, set()
        message = RESYNC_MESSAGE + " " + ",".join(map(str, sorted(owed)))
        try:
            await self.publish(CONTROL_CHANNEL, message)
        except BrokerUnavailable:
            self._owed_slots |= owed  # owed again, paid on a later turn

    # Repair: orphans find the master that owns their slot now.

    def _repair(self) -> None:
        if self._repairing is None or self._repairing.done():
            self._repairing = asyncio.create_task(self._repair_forever(), name="cluster-repair")

    async def _repair_forever(self) -> None:
        low, high = self._backoff
        step = 0
        while self._orphans:
            if step:
                await asyncio.sleep(low + random.uniform(0, min(high, low * 2**step)))
            step += 1
            try:
                # Ask again even if the client thinks it knows (it asks only after its own
                # command failed), or a promoted replica stays unknown.
                await self._cluster.nodes_manager.initialize()
                await self._place(set(self._orphans))
            except (*PUBLISH_ERRORS, LinkBroken, TimeoutError) as exc:
                logger.warning("Redis Cluster repair failed (%s); attempt %d.", exc, step)

    async def _place(self, orphans: set[str], resync: bool = True) -> None:
        by_master: dict[str, list[str]] = {}
        for channel in orphans:
            by_master.setdefault(self._master_of(channel) or "", []).append(channel)
        for master, channels in by_master.items():
            shard = await self._shard_of(master)
            if not await shard.join(channels, confirm=self._confirm_timeout):
                raise LinkBroken(f"shard {master} did not confirm its channels")
            self._orphans.difference_update(channels)
            self._paused_until.pop(master, None)  # proven good again
            logger.info("Redis Cluster shard %s: %d channels subscribed.", master, len(channels))
            if not resync:
                pass
            elif self._control in channels:
                self._resync(None)  # a resync asked for meanwhile may be lost: all re-read
            else:
                self._resync(set(), channels)

    async def _shard_of(self, master: str) -> Shard:
        async with self._opening:
            if (shard := self._shards.get(master)) is None:
                async with asyncio.timeout(self._confirm_timeout):
                    shard = await self._open(master)
            return shard

    async def _open(self, master: str) -> Shard:
        host, _, port = master.rpartition(":")
        if not host:
            raise LinkBroken("the cluster names no master for these slots")
        link = Link(self._address.node_url(host, int(port)), self._dead_after, self._link_name)
        shard = Shard(
            master,
            link,
            heard=self._heard,
            lost=self._lost,
            heartbeat=self._heartbeat,
            dead_after=self._dead_after,
        )
        try:
            await shard.open()
        except BaseException:
            await shard.close()
            raise
        self._shards[master] = shard
        return shard

    @property
    def _link_name(self) -> str:
        return f"{self._prefix}teaser-pubsub"

    def _master_of(self, channel: str) -> str | None:
        try:
            node = self._cluster.get_node_from_key(channel)
        except (RedisError, IndexError, KeyError):
            return None
        return node.name if node is not None else None


def _slots(text: str) -> set[int] | None:
    """The slots a resync names; None (all) if it names none or is not understood."""
    try:
        slots = {int(each) for each in text.split(",") if each.strip()}
    except ValueError:
        return None
    return slots or None
