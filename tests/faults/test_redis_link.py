"""The Redis link breaking under two real workers (uvicorn processes on one PostgreSQL),
each on a redis-server of this module's own, which it SIGKILLs, restarts empty and
SIGSTOPs, or reaches through a FaultProxy that stops forwarding:

- Redis killed at any moment (sockets subscribing, unsubscribing, sends publishing, all
  quiet): no traceback in either worker, no socket closed by the server, and every
  acknowledged send reaches its socket exactly once, in order;
- a half-open link (Redis stopped, or no byte forwarded, the TCP connections up): the
  worker notices within LINK_BOUND and reads the store on its own meanwhile, so a send made
  then reaches a socket on the other worker within LINK_BOUND + one poll interval; once
  Redis answers again, sends cross workers at once;
- Redis restarted empty on the same port: every subscription is back by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tests.faults.proxy import Fault, FaultProxy
from tests.redis_servers import RedisServer
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    ServerProcess,
    drop_postgres_database,
    fresh_postgres_database,
    new_session_id,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# What the Redis backend promises: a link that stops answering is dropped within its
# dead_after (3 s), one heartbeat (1 s) and one publish timeout (1 s). While dropped,
# sockets read the store every poll interval (TEASER_POLL_INTERVAL_MS, 8 s by default),
# first at the next sweep (1 s).
LINK_BOUND = 5.0
POLL_INTERVAL = 8.0
SWEEP = 1.0


@dataclass
class Cluster:
    redis: RedisServer
    a: ServerProcess  # where sends go
    b: ServerProcess  # where the sockets that receive them are
    proxy: FaultProxy | None = None
    log_marks: dict[int, int] = field(default_factory=dict)

    @property
    def workers(self) -> tuple[ServerProcess, ServerProcess]:
        return self.a, self.b

    def mark_logs(self) -> None:
        self.log_marks = {w.port: len(w.log()) for w in self.workers}

    def trouble(self) -> list[str]:
        """What the workers logged since `mark_logs` that is an error or a traceback."""
        logs = "\n".join(w.log()[self.log_marks.get(w.port, 0) :] for w in self.workers)
        return [
            line
            for line in logs.splitlines()
            if line.startswith(("ERROR", "Traceback")) or line.split(":")[0].endswith("Error")
        ]


async def start_cluster(directory: Path, *, proxied: bool) -> Cluster:
    redis = RedisServer(directory)
    await redis.start()
    proxy = None
    redis_url = redis.url
    if proxied:
        proxy = FaultProxy(redis.port)
        await proxy.start()
        redis_url = proxy.url()
    env = {"DATABASE_URL": await fresh_postgres_database(), "REDIS_URL": redis_url}
    a, b = ServerProcess(env, directory), ServerProcess(env, directory)
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    return Cluster(redis, a, b, proxy)


async def stop_cluster(cluster: Cluster) -> None:
    await asyncio.gather(*(asyncio.to_thread(w.stop) for w in cluster.workers))
    if cluster.proxy is not None:
        await cluster.proxy.stop()
    cluster.redis.stop()
    await drop_postgres_database(cluster.a.env["DATABASE_URL"])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def direct(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Two workers straight on the module's redis-server."""
    cluster = await start_cluster(tmp_path_factory.mktemp("direct"), proxied=False)
    try:
        yield cluster
    finally:
        await stop_cluster(cluster)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def proxied(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Two workers on the module's redis-server through a FaultProxy."""
    cluster = await start_cluster(tmp_path_factory.mktemp("proxied"), proxied=True)
    try:
        yield cluster
    finally:
        await stop_cluster(cluster)


async def healthz(worker: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=worker.base_url, timeout=10) as client:
        return str((await client.get("/healthz")).json()["status"])


async def until_healthy(cluster: Cluster, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while [await healthz(w) for w in cluster.workers] != ["ok", "ok"]:
        assert time.monotonic() < deadline, "the workers never became healthy again"
        await asyncio.sleep(0.1)


# --- Sockets and sends that record what happened -------------------------------------------


@dataclass
class Receiver:
    """A session's socket that acks every teaser at once, as the widget does."""

    session: str = field(default_factory=new_session_id)
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed_by_server: int | None = None

    @property
    def ids(self) -> list[str]:
        return [teaser["id"] for _, teaser in self.arrivals]

    def arrived(self, teaser_id: str) -> float | None:
        return next((at for at, t in self.arrivals if t["id"] == teaser_id), None)

    async def listen(self, worker: ServerProcess, opened: asyncio.Event) -> None:
        url = f"{worker.ws_url}/api/teaser-ws?sessionId={self.session}&siteId={DEMO_SITE}"
        async with connect(url) as socket:
            opened.set()
            async for raw in socket:
                frame = json.loads(raw)
                if frame["type"] == "teaser":
                    self.arrivals.append((time.monotonic(), frame))
                    await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
            self.closed_by_server = socket.close_code

    async def wait_for(self, ids: list[str], within: float) -> None:
        deadline = time.monotonic() + within
        while not set(ids) <= set(self.ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Send:
    session: str
    at: float
    status: int
    id: str | None


async def send(
    client: httpx.AsyncClient, session: str, text: str, worker: ServerProcess | None = None
) -> Send:
    """A send through the client's own base URL, or to `worker`."""
    at = time.monotonic()
    body = {"sessionId": session, "message": text}
    url = f"{worker.base_url if worker else ''}/api/teaser-messages"
    response = await client.put(url, headers=DEMO_HEADERS, json=body)
    return Send(session, at, response.status_code, response.json().get("id"))


async def open_receivers(worker: ServerProcess, count: int) -> tuple[list[Receiver], list[Any]]:
    receivers = [Receiver() for _ in range(count)]
    opened = [asyncio.Event() for _ in receivers]
    tasks = [
        asyncio.create_task(r.listen(worker, e)) for r, e in zip(receivers, opened, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 10)
    await asyncio.sleep(0.3)  # each socket subscribes right after its handshake
    return receivers, tasks


async def close_all(tasks: list[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Churn:
    """Session sockets opened and closed on both workers; what the server closed them
    with, if it did (a socket the client closes itself ends with 1000)."""

    workers: tuple[ServerProcess, ServerProcess]
    codes: list[int | None] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    opened: int = 0

    async def hold(self, worker: ServerProcess, leave: asyncio.Event) -> None:
        url = f"{worker.ws_url}/api/teaser-ws?sessionId={new_session_id()}&siteId={DEMO_SITE}"
        try:
            async with connect(url, open_timeout=10) as socket:
                self.opened += 1
                await leave.wait()
            self.codes.append(socket.close_code)
        except Exception as exc:  # a refused handshake or a broken socket: a failure
            self.failures.append(repr(exc))

    async def keep_opening(self, until: asyncio.Event) -> list[Held]:
        """Open sockets one after another (each SUBSCRIBEs) until told to stop."""
        held: list[Held] = []
        while not until.is_set():
            before, leave = self.opened + len(self.failures), asyncio.Event()
            task = asyncio.create_task(self.hold(self.workers[len(held) % 2], leave))
            held.append((task, leave))
            while self.opened + len(self.failures) == before and not task.done():
                await asyncio.sleep(0.001)
        return held

    async def open_streams(self, until: asyncio.Event) -> list[Held]:
        streams = [asyncio.create_task(self.keep_opening(until)) for _ in range(STREAMS)]
        await until.wait()
        return [held for stream in await asyncio.gather(*streams) for held in stream]


Held = tuple["asyncio.Task[None]", asyncio.Event]


async def close_one_by_one(held: list[Held]) -> None:
    """Each socket closes (the client's close: 1000), and so UNSUBSCRIBEs, in turn."""
    for _, leave in held:
        leave.set()
        await asyncio.sleep(0.003)
    await asyncio.gather(*(task for task, _ in held))


# --- 1. Redis SIGKILLed at a chosen moment ---------------------------------------------------

STREAMS = 16  # sockets opening at once, one after another in each stream
BURST = 60  # sends made at once
KILLS = 6


@dataclass
class Workload:
    cluster: Cluster
    receivers: list[Receiver]
    client: httpx.AsyncClient
    churn: Churn
    sent: list[Send] = field(default_factory=list)

    async def kill(self, within: float = 0.05) -> None:
        await asyncio.sleep(random.uniform(0.0, within))
        self.cluster.redis.kill()

    async def steady_sends(self, stop: asyncio.Event) -> None:
        """Sends flow the whole time, one every 50 ms, to the receivers in turn."""
        i = 0
        while not stop.is_set():
            receiver = self.receivers[i % len(self.receivers)]
            self.sent.append(await send(self.client, receiver.session, f"steady {i}"))
            i += 1
            await asyncio.sleep(0.05)

    async def subscribe(self) -> None:
        until = asyncio.Event()
        opening = asyncio.create_task(self.churn.open_streams(until))
        await self.kill(within=0.5)  # while sockets open, and so SUBSCRIBE, all the time
        await asyncio.sleep(0.3)  # and go on opening while Redis is down
        until.set()
        await close_one_by_one(await opening)

    async def unsubscribe(self) -> None:
        until = asyncio.Event()
        opening = asyncio.create_task(self.churn.open_streams(until))
        await asyncio.sleep(0.5)
        until.set()
        held = await opening
        await asyncio.sleep(0.3)  # all subscribed
        closing = asyncio.create_task(close_one_by_one(held))
        await self.kill(within=0.3)  # while sockets close, and so UNSUBSCRIBE, all the time
        await closing

    async def publish(self) -> None:
        sends = [
            send(self.client, self.receivers[i % len(self.receivers)].session, f"burst {i}")
            for i in range(BURST)
        ]
        burst = asyncio.gather(*sends)
        await self.kill()  # while the sends commit and publish
        self.sent += await burst

    async def idle(self) -> None:
        await asyncio.sleep(0.5)
        await self.kill()


MOMENTS = ["subscribe", "unsubscribe", "publish", "idle"]


@pytest.mark.parametrize("moment", MOMENTS, ids=[f"killed during {m}" for m in MOMENTS])
async def test_redis_killed_at_any_moment_breaks_no_socket_and_loses_or_repeats_no_send(
    direct: Cluster, moment: str
) -> None:
    direct.mark_logs()
    receivers, listening = await open_receivers(direct.b, 4)
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=direct.a.base_url, timeout=30) as client:
        load = Workload(direct, receivers, client, Churn(direct.workers))
        sending = asyncio.create_task(load.steady_sends(stop))
        try:
            for _ in range(KILLS):
                await getattr(load, moment)()
                await asyncio.sleep(random.uniform(0.2, 1.0))  # down a while, sends go on
                await direct.redis.start()
                await asyncio.sleep(random.uniform(0.5, 1.5))
            stop.set()
            await sending
            acknowledged = [s for s in load.sent if s.status == 201]
            for receiver in receivers:
                mine = [s.id for s in acknowledged if s.session == receiver.session]
                await receiver.wait_for([str(i) for i in mine], within=POLL_INTERVAL + 10)
            await until_healthy(direct)
            after = await send(client, receivers[0].session, "after the outages")
            await receivers[0].wait_for([str(after.id)], within=1.0)
        finally:
            stop.set()
            await close_all(listening)

    assert direct.trouble() == []
    assert load.churn.failures == [] and set(load.churn.codes) <= {1000}, load.churn.codes
    assert [r.closed_by_server for r in receivers] == [None] * len(receivers)
    assert [s.status for s in load.sent] == [201] * len(load.sent)
    for receiver in receivers:
        mine = [s.id for s in acknowledged if s.session == receiver.session]
        if receiver is receivers[0]:
            mine.append(after.id)
        # Every one, once (the bursts are concurrent: their order is the store's, by seq).
        assert sorted(receiver.ids) == sorted(mine)
        assert [t["seq"] for _, t in receiver.arrivals] == list(range(1, len(mine) + 1))


# --- 2. A half-open link ---------------------------------------------------------------------


def sigstopped(cluster: Cluster) -> Callable[[bool], None]:
    return lambda on: cluster.redis.pause() if on else cluster.redis.resume()


def blackholed(cluster: Cluster) -> Callable[[bool], None]:
    assert cluster.proxy is not None
    proxy = cluster.proxy

    def hole(on: bool) -> None:
        proxy.fault = Fault.STALL if on else Fault.NONE

    return hole


HALF_OPEN = [sigstopped, blackholed]


@pytest.mark.parametrize("half_open", HALF_OPEN, ids=["redis-server SIGSTOPped", "proxy blackhole"])
async def test_a_half_open_link_is_dropped_in_bounded_time_and_healthy_once_redis_answers(
    proxied: Cluster, half_open: Callable[[Cluster], Callable[[bool], None]]
) -> None:
    proxied.mark_logs()
    [receiver], listening = await open_receivers(proxied.b, 1)
    pause = half_open(proxied)
    held = LINK_BOUND + SWEEP + POLL_INTERVAL + 2.0  # past the bound, so Redis can't help
    async with httpx.AsyncClient(base_url=proxied.a.base_url, timeout=30) as client:
        try:
            before = await send(client, receiver.session, "before the pause")
            await receiver.wait_for([str(before.id)], within=1.0)
            pause(True)
            paused_at = time.monotonic()
            await asyncio.sleep(0.5)
            during = await send(client, receiver.session, "while Redis does not answer")
            await receiver.wait_for([str(during.id)], within=held - 0.5)
            still_paused = time.monotonic() - paused_at < held
            pause(False)
            await until_healthy(proxied)
            after = await send(client, receiver.session, "once Redis answers again")
            await receiver.wait_for([str(after.id)], within=1.0)
            await asyncio.sleep(1.0)  # nothing more, and nothing twice, may come
        finally:
            pause(False)
            await close_all(listening)

    arrived = receiver.arrived(str(during.id))
    assert during.status == 201 and arrived is not None, "the send made during the pause is lost"
    assert still_paused  # it came by the store, not by Redis once resumed
    assert arrived - during.at <= LINK_BOUND + SWEEP + POLL_INTERVAL
    assert receiver.ids == [before.id, during.id, after.id]
    assert proxied.trouble() == []


async def test_a_poll_held_on_b_while_the_link_is_half_open_gets_a_send_made_on_a(
    proxied: Cluster,
) -> None:
    """Long-polling: a held poll is woken by markers Redis carries. While they can't come,
    it looks in the store each poll interval, as a socket does."""
    proxied.mark_logs()
    pause = blackholed(proxied)
    session = new_session_id()
    poll = {"sessionId": session, "siteId": DEMO_SITE, "wait": 25_000}
    async with httpx.AsyncClient(timeout=40) as client:
        holding = asyncio.create_task(
            client.post(f"{proxied.b.base_url}/api/teaser-messages", json=poll)
        )
        try:
            await asyncio.sleep(0.5)  # held on B
            pause(True)
            await asyncio.sleep(0.5)
            during = await send(client, session, "while Redis does not answer", proxied.a)
            answer = await asyncio.wait_for(holding, 25)
            answered_after = time.monotonic() - during.at
        finally:
            pause(False)
        await until_healthy(proxied)

    assert during.status == 201
    assert [m["id"] for m in answer.json()["messages"]] == [during.id]
    assert answered_after <= LINK_BOUND + SWEEP + POLL_INTERVAL
    assert proxied.trouble() == []


# --- 3. Redis restarted empty on the same port -----------------------------------------------


async def test_subscriptions_come_back_by_themselves_when_redis_restarts_empty(
    direct: Cluster,
) -> None:
    direct.mark_logs()
    receivers, listening = await open_receivers(direct.b, 3)
    # As the workers name them on Redis: with this test process's prefix (tests/conftest.py).
    prefix = os.environ.get("TEASER_REDIS_PREFIX", "")
    channels = [f"{prefix}teaser:s:{DEMO_SITE}:{r.session}" for r in receivers]
    async with httpx.AsyncClient(base_url=direct.a.base_url, timeout=30) as client:
        try:
            direct.redis.kill()
            await asyncio.sleep(0.5)
            await direct.redis.start()  # no persistence: no client, no subscription
            await until_healthy(direct)
            admin = aioredis.from_url(direct.redis.url)
            try:
                deadline = time.monotonic() + 10
                while dict(await admin.pubsub_numsub(*channels)) != {
                    c.encode(): 1 for c in channels
                }:
                    assert time.monotonic() < deadline, await admin.pubsub_numsub(*channels)
                    await asyncio.sleep(0.1)
            finally:
                await admin.aclose()
            sent = [await send(client, r.session, "after the restart") for r in receivers]
            for receiver, one in zip(receivers, sent, strict=True):
                await receiver.wait_for([str(one.id)], within=1.0)
        finally:
            await close_all(listening)

    assert [r.ids for r in receivers] == [[s.id] for s in sent]
    assert direct.trouble() == []
