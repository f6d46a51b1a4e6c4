"""Broker on the in-process and Redis backends: targeted wake-ups, and surviving Redis hiccups."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis

from realtime.fanout.backends.base import RESYNC, Event
from realtime.fanout.backends.redis import RedisBackend
from realtime.fanout.broker import Broker
from tests.faults.proxy import Fault, FaultProxy
from tests.support import ROOT


def channel() -> str:
    return f"teaser:test:{uuid.uuid4().hex}"


async def next_event(subscriber: object, timeout: float = 2.0) -> Event:
    return await asyncio.wait_for(subscriber.get(), timeout)  # type: ignore[attr-defined]


async def test_a_publish_reaches_every_listener_of_its_channel_only(broker_url: str) -> None:
    broker = Broker(broker_url)
    await broker.connect()
    target, other = channel(), channel()
    try:
        async with (
            broker.subscribe(target) as first,
            broker.subscribe(target) as second,
            broker.subscribe(other) as bystander,
        ):
            await broker.publish(target, "look now")

            assert (await next_event(first)).message == "look now"
            assert (await next_event(second)).message == "look now"
            with pytest.raises(asyncio.TimeoutError):
                await next_event(bystander, timeout=0.3)
    finally:
        await broker.disconnect()


async def test_a_channel_is_dropped_when_its_last_listener_leaves(broker_url: str) -> None:
    broker = Broker(broker_url)
    await broker.connect()
    name = channel()
    try:
        async with broker.subscribe(name):
            async with broker.subscribe(name):
                assert broker.channel_count == 1
            assert broker.channel_count == 1
        assert broker.channel_count == 0
    finally:
        await broker.disconnect()


async def test_redis_carries_a_publish_from_one_worker_to_another(redis_url: str) -> None:
    worker_a, worker_b = Broker(redis_url), Broker(redis_url)
    await worker_a.connect()
    await worker_b.connect()
    name = channel()
    try:
        async with worker_b.subscribe(name) as listener:
            await worker_a.publish(name, "from a")
            assert (await next_event(listener)).message == "from a"
    finally:
        await worker_a.disconnect()
        await worker_b.disconnect()


async def test_a_killed_redis_subscription_reconnects_and_asks_for_a_resync(
    redis_url: str,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    broker = Broker(redis_url, prefix=prefix)
    await broker.connect()
    name = channel()
    admin = aioredis.from_url(redis_url)
    try:
        async with broker.subscribe(name) as listener:
            # Only this broker's link: others share this Redis.
            (ours,) = [
                c for c in await admin.client_list() if c["name"] == f"{prefix}teaser-pubsub"
            ]
            await admin.client_kill_filter(_type="pubsub", addr=ours["addr"])

            assert (await next_event(listener, timeout=10)).channel == RESYNC
            await broker.publish(name, "after reconnect")
            assert (await next_event(listener)).message == "after reconnect"
    finally:
        await admin.aclose()
        await broker.disconnect()


async def test_brokers_with_other_prefixes_share_a_redis_without_hearing_each_other(
    redis_url: str,
) -> None:
    ours, theirs, same = (Broker(redis_url, prefix=p) for p in ("staging:", "prod:", "staging:"))
    for broker in (ours, theirs, same):
        await broker.connect()
    name = channel()
    try:
        async with theirs.subscribe(name) as stranger, same.subscribe(name) as colleague:
            await ours.publish(name, "for staging")
            heard = await next_event(colleague)
            assert (heard.channel, heard.message) == (name, "for staging")
            with pytest.raises(asyncio.TimeoutError):
                await next_event(stranger, timeout=0.3)
        # On Redis itself the channel's name carries the prefix.
        admin = aioredis.from_url(redis_url)
        try:
            async with ours.subscribe(name):
                assert (await admin.pubsub_numsub(f"staging:{name}"))[0][1] >= 1
                assert (await admin.pubsub_numsub(name))[0][1] == 0
        finally:
            await admin.aclose()
    finally:
        for broker in (ours, theirs, same):
            await broker.disconnect()


async def test_publishing_while_redis_is_unreachable_still_wakes_local_listeners() -> None:
    broker = Broker("redis://127.0.0.1:1/0")  # nothing listens on port 1
    await broker.connect()
    name = channel()
    try:
        async with broker.subscribe(name) as listener:
            assert await broker.publish(name, "local") is False
            assert (await next_event(listener)).message == "local"
            assert await broker.healthy() is False
    finally:
        await broker.disconnect()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of Redis; `through(proxy, redis_url)` is its Redis URL."""
    upstream = urlparse(redis_url)
    proxy = FaultProxy(upstream.port or 6379, upstream.hostname or "127.0.0.1")
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def through(proxy: FaultProxy, redis_url: str) -> str:
    return proxy.url(path=urlparse(redis_url).path or "/0")


async def test_a_reconnected_redis_link_asks_for_a_resync_only_once_it_hears_again(
    redis_url: str, proxy: FaultProxy
) -> None:
    # The resync covers what was sent before it; what is sent after must reach the
    # listener, so the subscriptions must be in force at Redis before the resync.
    broker = Broker(through(proxy, redis_url))
    await broker.connect()
    name = channel()
    direct = aioredis.from_url(redis_url)
    try:
        async with broker.subscribe(name) as listener:
            await asyncio.sleep(0.2)  # the first SUBSCRIBE is in force
            proxy.delay = 0.3  # from now on, each command reaches Redis 0.3 s late
            proxy.cut()

            assert (await next_event(listener, timeout=10)).channel == RESYNC
            await direct.publish(name, "right after the resync")
            assert (await next_event(listener, timeout=3)).message == "right after the resync"
    finally:
        await direct.aclose()
        await broker.disconnect()


async def test_the_first_publish_after_redis_restarted_still_reaches_other_workers(
    redis_url: str, proxy: FaultProxy
) -> None:
    sender, receiver = Broker(through(proxy, redis_url)), Broker(redis_url)
    await sender.connect()
    await receiver.connect()
    name = channel()
    try:
        async with receiver.subscribe(name) as listener:
            await asyncio.sleep(0.2)  # the SUBSCRIBE is in force
            assert await sender.publish(name, "before") is True
            await proxy.restart(down_for=0.5)  # closes the sender's pooled connection
            await asyncio.sleep(0.5)

            published = await sender.publish(name, "after the restart")

            assert published is True
            messages = [(await next_event(listener)).message for _ in range(2)]
            assert messages == ["before", "after the restart"]
    finally:
        await sender.disconnect()
        await receiver.disconnect()


def test_a_worker_on_the_in_process_broker_never_loads_redis() -> None:
    # Backends are imported by URL scheme, and nothing else reaches into the Redis one.
    script = (
        "import sys, asyncio, api.app, api.cli\n"
        "from realtime.platform import Settings\n"
        "from realtime.runtime import Runtime\n"
        "async def main():\n"
        "    runtime = Runtime(Settings(environment='development', auto_migrate=True,\n"
        "        database_url='sqlite+aiosqlite:///{}'.format(sys.argv[1])))\n"
        "    await runtime.start(); await runtime.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [sys.executable, "-c", script, f"{folder}/teaser.db"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- The Redis link breaking at any moment ---------------------------------------------------


def ignore(event: Event) -> None:
    pass


@pytest.mark.parametrize("operation", ["subscribe", "unsubscribe"])
async def test_a_redis_link_cut_while_channels_come_and_go_raises_nothing_and_resyncs(
    redis_url: str, proxy: FaultProxy, operation: str
) -> None:
    # redis-py raised AttributeError and RuntimeError from a SUBSCRIBE written on a
    # connection torn down under it; those went up into the socket that subscribed.
    backend = RedisBackend(through(proxy, redis_url))
    await backend.connect()
    names = [channel() for _ in range(300)]
    if operation == "unsubscribe":
        for name in names:
            await backend.subscribe(name)
    direct = aioredis.from_url(redis_url)
    try:
        churn = asyncio.gather(*(getattr(backend, operation)(name) for name in names))
        await asyncio.sleep(0.002)
        proxy.cut()
        await churn  # raises nothing

        assert (await asyncio.wait_for(backend.next_published(), 10)).channel == RESYNC
        await backend.subscribe(names[0])
        await direct.publish(names[0], "after the cut")
        assert await asyncio.wait_for(heard(backend, names[0]), 3) == "after the cut"
    finally:
        await direct.aclose()
        await backend.disconnect()


async def heard(backend: RedisBackend, name: str) -> str:
    while (event := await backend.next_published()).channel != name:
        pass
    return event.message


async def test_a_half_open_redis_link_is_dropped_within_five_seconds_and_comes_back(
    redis_url: str, proxy: FaultProxy
) -> None:
    broker = Broker(through(proxy, redis_url))
    await broker.connect()
    name = channel()
    direct = aioredis.from_url(redis_url)
    try:
        async with broker.subscribe(name) as listener:
            await asyncio.sleep(0.2)  # the SUBSCRIBE is in force
            proxy.fault = Fault.STALL  # the connection stays up; no byte gets through
            stalled = asyncio.get_running_loop().time()
            while broker.listening:
                await asyncio.sleep(0.05)
            deaf_for = asyncio.get_running_loop().time() - stalled
            proxy.fault = Fault.NONE

            assert deaf_for <= 5.0
            assert (await next_event(listener, timeout=15)).channel == RESYNC
            await direct.publish(name, "answering again")
            assert (await next_event(listener)).message == "answering again"
    finally:
        proxy.fault = Fault.NONE
        await direct.aclose()
        await broker.disconnect()


async def test_a_worker_whose_publish_was_lost_has_every_worker_resync_once_redis_is_back(
    redis_url: str, proxy: FaultProxy
) -> None:
    # The receiver's link never drops, so only the sender knows the wake-up was lost.
    sender, receiver = Broker(through(proxy, redis_url)), Broker(redis_url)
    await sender.connect()
    await receiver.connect()
    name = channel()
    try:
        async with receiver.subscribe(name) as listener:
            await asyncio.sleep(0.2)
            proxy.fault = Fault.REFUSE
            proxy.cut()
            assert await sender.publish(name, "lost") is False
            proxy.fault = Fault.NONE

            assert (await next_event(listener, timeout=15)).channel == RESYNC
    finally:
        proxy.fault = Fault.NONE
        await sender.disconnect()
        await receiver.disconnect()
