"""Publishes on a Redis Cluster are gathered: those of one moment go in one pipeline per master,
on one connection to it, all masters at once, each answering its own subscriber count. A slot
moved meanwhile (MOVED) is followed, and a master that stops answering fails only its own
publishes. On a cluster of this module's own (three masters, a replica each); the stall
comes last."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from realtime.fanout import RESYNC, Broker, Event, session_channel
from realtime.fanout.backends.redis_link import CONTROL_CHANNEL
from tests.fanout.test_redis_cluster import PREFIX, Heard, worker
from tests.redis_servers import RedisClusterNodes, RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHANNELS_PER_MASTER = 4
PUBLISHES_PER_CHANNEL = 25


async def channels_by_master(nodes: RedisClusterNodes, per_master: int) -> dict[int, list[str]]:
    """Session channels on every master, by the master's port, none on the control channel's
    slot."""
    control = key_slot((PREFIX + CONTROL_CHANNEL).encode())
    found: dict[int, list[str]] = {}
    for n in range(10_000):
        channel = session_channel("acme", f"gathered-{n}")
        if key_slot((PREFIX + channel).encode()) == control:
            continue
        master = await nodes.master_of(PREFIX + channel)
        if len(each := found.setdefault(master.port, [])) < per_master:
            each.append(channel)
        if sum(map(len, found.values())) == per_master * len(nodes.nodes) // 2:
            return found
    raise AssertionError("the session channels did not reach every master")


def node(nodes: RedisClusterNodes, port: int) -> RedisServer:
    return next(each for each in nodes.nodes if each.port == port)


async def publishing_connections(server: RedisServer) -> int:
    """Connections to `server` whose last command was an SPUBLISH."""
    async with aioredis.from_url(server.url, decode_responses=True) as client:
        clients = await client.client_list()
    return sum(each.get("cmd") == "spublish" for each in clients)


async def all_at_once(sender: Broker, channels: list[str]) -> list[int | None]:
    return list(await asyncio.gather(*(sender.publish_counted(c, c) for c in channels)))


async def test_publishes_at_once_go_one_pipeline_per_master_each_answering_its_count(
    nodes: RedisClusterNodes,
) -> None:
    by_master = await channels_by_master(nodes, CHANNELS_PER_MASTER)
    # On each master: one channel two workers listen to, one channel one does, the rest none.
    both = [channels[0] for channels in by_master.values()]
    one = [channels[1] for channels in by_master.values()]
    listeners = {channel: Heard() for channel in both + one}
    expected = {
        c: 2 if c in both else 1 if c in one else 0 for cs in by_master.values() for c in cs
    }
    sends = [channel for channel in expected for _ in range(PUBLISHES_PER_CHANNEL)]

    async with worker(nodes) as sender, worker(nodes) as first, worker(nodes) as second:
        for channel, heard in listeners.items():
            await first.add_listener(channel, heard)
            if channel in both:
                await second.add_listener(channel, lambda event: None)
        await asyncio.sleep(0.2)  # the subscriptions reach their masters

        counts = await all_at_once(sender, sends)
        await asyncio.sleep(0.5)  # the messages reach the listeners
        connections = {port: await publishing_connections(node(nodes, port)) for port in by_master}

    assert counts == [expected[channel] for channel in sends]
    for channel, heard in listeners.items():
        assert [e.message for e in heard.events] == [channel] * PUBLISHES_PER_CHANNEL
    # One at a time, 300 publishes at once had opened about one connection each.
    assert connections == dict.fromkeys(by_master, 1)


async def test_a_slot_moved_to_another_master_is_followed_by_the_publishes_gathered_for_it(
    nodes: RedisClusterNodes,
) -> None:
    by_master = await channels_by_master(nodes, 1)
    (source, (moving,)), (target, _), *_ = by_master.items()
    async with worker(nodes) as sender, worker(nodes) as receiver:
        heard = Heard()
        await receiver.add_listener(moving, heard)
        await asyncio.sleep(0.2)
        assert await sender.publish_counted(moving, "before") == 1  # the sender's layout
        assert (await heard.next()).message == "before"

        await move_slot(nodes, key_slot((PREFIX + moving).encode()), source, target)
        await subscribed_on(node(nodes, target), PREFIX + moving)

        # The sender still names the old master: every publish of the batch meets a MOVED.
        counts = await all_at_once(sender, [moving] * 20)
        after = await sender.publish_counted(moving, "after")
        async with asyncio.timeout(5.0):
            while len(messages(heard.events)) < 21:
                await asyncio.sleep(0.05)

    assert counts == [1] * 20
    assert after == 1
    assert messages(heard.events) == [moving] * 20 + ["after"]


def messages(events: list[Event]) -> list[str]:
    """What was published, without the resyncs (the receiver's, its channel placed anew)."""
    return [event.message for event in events if event.channel != RESYNC]


async def test_a_stalled_master_fails_only_its_own_publishes_and_the_others_answer_at_once(
    nodes: RedisClusterNodes,
) -> None:
    by_master = await channels_by_master(nodes, 1)
    control = (await nodes.master_of(PREFIX + CONTROL_CHANNEL)).port
    stalled_port = next(port for port in by_master if port != control)
    stalled = by_master[stalled_port][0]
    spared = [channels[0] for port, channels in by_master.items() if port != stalled_port]

    async with worker(nodes) as sender, worker(nodes) as receiver:
        for channel in [stalled, *spared]:
            await receiver.add_listener(channel, lambda event: None)
        await asyncio.sleep(0.2)
        assert await all_at_once(sender, [stalled, *spared]) == [1, 1, 1]

        node(nodes, stalled_port).pause()  # answers nothing: its publishes meet the timeout
        sends = [stalled] * 10 + spared * 10
        answers = await asyncio.gather(*(timed(sender, channel) for channel in sends))
        # Paused for that master only, until its replica has taken over; then asked again.
        deadline = time.monotonic() + 20.0
        while await sender.publish_counted(stalled) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        recovered = await sender.publish_counted(stalled)

    assert [count for count, _ in answers] == [None] * 10 + [1] * 20
    assert max(took for _, took in answers[10:]) < 0.5
    assert recovered == 1


async def timed(sender: Broker, channel: str) -> tuple[int | None, float]:
    started = time.monotonic()
    count = await sender.publish_counted(channel, channel)
    return count, time.monotonic() - started


async def move_slot(nodes: RedisClusterNodes, slot: int, source: int, target: int) -> None:
    """Give `slot` from one master to another, as a resharding does (it holds no keys)."""
    ids = {port: await command(node(nodes, port), "CLUSTER", "MYID") for port in (source, target)}
    await command(node(nodes, target), "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    await command(node(nodes, source), "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    for port in (target, source):
        await command(node(nodes, port), "CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    await nodes.wait_until_whole()


async def subscribed_on(server: RedisServer, channel: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while (await command(server, "PUBSUB", "SHARDNUMSUB", channel))[1] != 1:
            await asyncio.sleep(0.05)


async def command(server: RedisServer, *args: object) -> object:
    async with aioredis.from_url(server.url, decode_responses=True) as client:
        return await client.execute_command(*args)
