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
from realtime.fanout.broker import Broker
from tests.faults.proxy import FaultProxy
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
    broker = Broker(redis_url)
    await broker.connect()
    name = channel()
    admin = aioredis.from_url(redis_url)
    try:
        async with broker.subscribe(name) as listener:
            await admin.client_kill_filter(_type="pubsub")

            assert (await next_event(listener, timeout=10)).channel == RESYNC
            await broker.publish(name, "after reconnect")
            assert (await next_event(listener)).message == "after reconnect"
    finally:
        await admin.aclose()
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
