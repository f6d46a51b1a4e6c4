"""The broker on a Redis Cluster with sharded pub/sub, on a cluster of this module's own
(three masters, a replica each): every shard carries its channels between workers, and a
master killed makes only the listeners of its channels re-read the store, once its replica
has taken over. The kill comes last: it leaves the cluster with one master unreplicated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.crc import key_slot

from realtime.fanout import RESYNC, Broker, Event, session_channel
from realtime.fanout.backends.redis_link import CONTROL_CHANNEL
from tests.redis_servers import RedisClusterNodes, RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "cluster-test:"


@asynccontextmanager
async def worker(nodes: RedisClusterNodes) -> AsyncIterator[Broker]:
    broker = Broker(nodes.url, prefix=PREFIX)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.disconnect()


class Heard:
    """What one listener heard."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.set()

    async def next(self, timeout: float = 5.0) -> Event:
        async with asyncio.timeout(timeout):
            while not self.events:
                self.arrived.clear()
                await self.arrived.wait()
        return self.events.pop(0)

    @property
    def resyncs(self) -> int:
        return sum(event.channel == RESYNC for event in self.events)


async def one_channel_per_master(nodes: RedisClusterNodes) -> dict[int, str]:
    """A session channel on each master, by the master's port."""
    found: dict[int, str] = {}
    for n in range(10_000):
        channel = session_channel("acme", f"session-{n}")
        master = await nodes.master_of(PREFIX + channel)
        found.setdefault(master.port, channel)
        if len(found) == len(nodes.nodes) // 2:
            return found
    raise AssertionError("the session channels did not reach every master")


async def test_every_shard_carries_a_publish_from_one_worker_to_a_listener_on_another(
    nodes: RedisClusterNodes,
) -> None:
    channels = list((await one_channel_per_master(nodes)).values())
    async with worker(nodes) as sender, worker(nodes) as receiver:
        heard = {channel: Heard() for channel in channels}
        for channel, listener in heard.items():
            await receiver.add_listener(channel, listener)
        await asyncio.sleep(0.2)  # the subscriptions reach their masters

        counts = [await sender.publish_counted(channel, f"to {channel}") for channel in channels]
        got = [(await heard[channel].next()).message for channel in channels]

    assert counts == [1, 1, 1]
    assert got == [f"to {channel}" for channel in channels]


async def test_a_channel_nobody_listens_to_reaches_no_worker(nodes: RedisClusterNodes) -> None:
    async with worker(nodes) as sender:
        assert await sender.publish_counted(session_channel("acme", "nobody-here")) == 0


async def test_a_listener_gone_hears_nothing_more_and_its_channel_counts_zero(
    nodes: RedisClusterNodes,
) -> None:
    channel = session_channel("acme", "leaving")
    async with worker(nodes) as sender, worker(nodes) as receiver:
        heard = Heard()
        async with receiver.listen(channel, heard):
            await asyncio.sleep(0.2)
            assert await sender.publish_counted(channel, "first") == 1
            assert (await heard.next()).message == "first"
        await asyncio.sleep(0.2)

        assert await sender.publish_counted(channel, "second") == 0
        await asyncio.sleep(0.2)
        assert heard.events == []


async def test_a_worker_on_the_cluster_is_listening_and_healthy(nodes: RedisClusterNodes) -> None:
    async with worker(nodes) as broker:
        assert broker.listening
        assert await broker.healthy()


async def test_a_killed_master_resyncs_only_its_channels_and_its_replica_carries_them_after(
    nodes: RedisClusterNodes,
) -> None:
    control = await nodes.master_of(PREFIX + CONTROL_CHANNEL)
    by_master = await one_channel_per_master(nodes)
    doomed_port = next(port for port in by_master if port != control.port)
    doomed: RedisServer = next(node for node in nodes.nodes if node.port == doomed_port)
    struck, spared = by_master[doomed_port], by_master[control.port]
    assert key_slot((PREFIX + struck).encode()) != key_slot((PREFIX + spared).encode())

    async with worker(nodes) as sender, worker(nodes) as receiver:
        on_struck, on_spared = Heard(), Heard()
        await receiver.add_listener(struck, on_struck)
        await receiver.add_listener(spared, on_spared)
        await asyncio.sleep(0.2)

        doomed.kill()
        started = time.monotonic()
        resynced = await on_struck.next(timeout=15.0)
        took = time.monotonic() - started
        assert receiver.listening

        # The sender still names the dead master for that slot until a publish fails
        # there; it then asks the cluster again, and owes the slot a resync.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            await sender.publish(struck, "after the failover")
            if any(e.message == "after the failover" for e in on_struck.events):
                break
            await asyncio.sleep(0.1)

    assert resynced.channel == RESYNC
    assert took < 10.0
    assert any(e.message == "after the failover" for e in on_struck.events)
    assert on_spared.events == []
