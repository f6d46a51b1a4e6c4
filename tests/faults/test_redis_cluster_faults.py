"""A Redis Cluster's master killed while sends go on: two real workers (uvicorn processes on
one PostgreSQL) on a cluster of this module's own (three masters, a replica each), the
sender on worker A, the visitors' sockets on worker B, their sessions on every shard.

Every PUT answers 201 (the commit is what counts); every message reaches its socket once
and in order, the struck shard's too, once its replica has taken over; the other shards'
sockets never wait for it; and neither worker logs a traceback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from realtime.fanout import session_channel
from tests.redis_servers import RedisClusterNodes
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    ServerProcess,
    drop_postgres_database,
    fresh_postgres_database,
    new_session_id,
    running_workers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SENDS_PER_SESSION = 30
KILL_AFTER = 10  # sends per session, then the master goes
SESSIONS_PER_MASTER = 2


@dataclass
class Visitor:
    session: str
    master: int  # the port of the master its channel was on
    socket: ClientConnection
    texts: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    done_at: float | None = None

    async def read(self) -> None:
        async for raw in self.socket:
            frame = json.loads(raw)
            if frame["type"] != "teaser":
                continue
            self.texts.append(frame["message"])
            self.seqs.append(frame["seq"])
            await self.socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
            if len(self.texts) >= SENDS_PER_SESSION and self.done_at is None:
                self.done_at = time.monotonic()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def workers(
    nodes: RedisClusterNodes, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    database = await fresh_postgres_database()
    env = {"DATABASE_URL": database, "REDIS_URL": nodes.url}
    try:
        async with running_workers(env, tmp_path_factory.mktemp("workers")) as workers:
            yield workers
    finally:
        await drop_postgres_database(database)


async def sessions_on_every_master(nodes: RedisClusterNodes, prefix: str) -> list[tuple[str, int]]:
    """Sessions whose channels (as the workers name them on Redis) are on every master."""
    wanted = SESSIONS_PER_MASTER * len(nodes.nodes) // 2
    found: dict[int, list[str]] = {}
    while sum(len(each) for each in found.values()) < wanted:
        session = new_session_id()
        master = (await nodes.master_of(prefix + session_channel(DEMO_SITE, session))).port
        if len(found.setdefault(master, [])) < SESSIONS_PER_MASTER:
            found[master].append(session)
    return [(session, master) for master, each in found.items() for session in each]


async def send_all(client: httpx.AsyncClient, worker: ServerProcess, session: str) -> list[int]:
    statuses = []
    for n in range(SENDS_PER_SESSION):
        response = await client.put(
            f"{worker.base_url}/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session, "message": f"{session}:{n}"},
        )
        statuses.append(response.status_code)
        await asyncio.sleep(0.02)
    return statuses


async def test_a_master_killed_mid_send_loses_and_repeats_nothing_on_any_shard(
    nodes: RedisClusterNodes, workers: tuple[ServerProcess, ServerProcess]
) -> None:
    worker_a, worker_b = workers
    # script/test gives each of its processes a channel prefix (tests/conftest.py).
    placed = await sessions_on_every_master(nodes, worker_a.env.get("TEASER_REDIS_PREFIX", ""))
    url = f"{worker_b.ws_url}/api/teaser-ws?siteId={DEMO_SITE}&sessionId="
    visitors = [
        Visitor(session, master, await connect(url + session)) for session, master in placed
    ]
    readers = [asyncio.create_task(visitor.read()) for visitor in visitors]
    struck = visitors[0].master
    doomed = next(node for node in nodes.nodes if node.port == struck)
    await asyncio.sleep(0.5)  # listening, and in the directory

    async def kill_midway() -> None:
        while min(len(v.texts) for v in visitors) < KILL_AFTER:
            await asyncio.sleep(0.01)
        doomed.kill()

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            killing = asyncio.create_task(kill_midway())
            statuses = await asyncio.gather(
                *(send_all(client, worker_a, v.session) for v in visitors)
            )
            sent_at = time.monotonic()
            await killing
        deadline = sent_at + 20.0
        while time.monotonic() < deadline and any(v.done_at is None for v in visitors):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything sent twice would come now
    finally:
        for reader in readers:
            reader.cancel()
        for visitor in visitors:
            await visitor.socket.close()

    assert all(status == 201 for each in statuses for status in each)
    for visitor in visitors:
        assert visitor.texts == [f"{visitor.session}:{n}" for n in range(SENDS_PER_SESSION)]
        assert visitor.seqs == sorted(set(visitor.seqs))
    spared = [v for v in visitors if v.master != struck]
    lags = [None if v.done_at is None else round(v.done_at - sent_at, 2) for v in spared]
    assert all(lag is not None and lag < 2.0 for lag in lags), lags
    assert "Traceback" not in worker_a.log() + worker_b.log()
