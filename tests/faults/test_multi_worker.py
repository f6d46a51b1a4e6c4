"""Two real uvicorn workers on one PostgreSQL and one Redis, with load: subscribers split
across both, hundreds of sends through one, concurrent bulk sends through both."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    ServerProcess,
    drop_postgres_database,
    fresh_postgres_database,
    new_session_id,
    require_redis,
    running_workers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SENDS = 500
SUBSCRIBERS = 20
CONCURRENT_SENDS = 8


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    url = asyncio.run(fresh_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def two_workers(
    database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    env = {"DATABASE_URL": database, "REDIS_URL": await require_redis()}
    async with running_workers(env, tmp_path_factory.mktemp("workers")) as workers:
        yield workers


def tracebacks(*workers: ServerProcess) -> str:
    """The server side of a failure, for the assertion message."""
    return "\n".join(w.log()[-4000:] for w in workers if "Traceback" in w.log())


@dataclass
class Subscriber:
    session: str
    frames: list[dict[str, object]] = field(default_factory=list)

    async def listen(self, worker: ServerProcess, opened: asyncio.Event) -> None:
        url = f"{worker.ws_url}/api/teaser-ws?sessionId={self.session}&siteId={DEMO_SITE}"
        async with connect(url) as socket:
            opened.set()
            async for raw in socket:
                frame = json.loads(raw)
                if frame["type"] == "teaser":
                    self.frames.append(frame)
                    await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))


async def test_every_subscriber_on_either_worker_gets_all_its_messages_once_in_order(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    subscribers = [Subscriber(new_session_id()) for _ in range(SUBSCRIBERS)]
    opened = [asyncio.Event() for _ in subscribers]
    listening = [
        asyncio.create_task(s.listen(two_workers[i % 2], opened[i]))
        for i, s in enumerate(subscribers)
    ]
    sender = two_workers[0]
    sent: dict[str, list[str]] = {s.session: [] for s in subscribers}
    statuses: list[int] = []
    gate = asyncio.Semaphore(CONCURRENT_SENDS)

    async def send(client: httpx.AsyncClient, i: int) -> None:
        session = subscribers[i % SUBSCRIBERS].session
        async with gate:
            body = {"sessionId": session, "message": f"m{i}"}
            response = await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=body)
        statuses.append(response.status_code)
        if response.status_code == 201:
            sent[session].append(response.json()["id"])

    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 10)
        await asyncio.sleep(0.3)  # each socket subscribes right after its handshake
        async with httpx.AsyncClient(base_url=sender.base_url, timeout=30) as client:
            await asyncio.gather(*(send(client, i) for i in range(SENDS)))
        for _ in range(300):  # bounded: 30 s
            if sum(len(s.frames) for s in subscribers) >= SENDS:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # nothing more, and nothing twice, may come
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)

    assert statuses == [201] * SENDS, tracebacks(*two_workers)
    for subscriber in subscribers:
        received = [str(frame["id"]) for frame in subscriber.frames]
        assert sorted(received) == sorted(sent[subscriber.session])  # all of them, once each
        assert [frame["seq"] for frame in subscriber.frames] == list(range(1, len(received) + 1))


async def test_concurrent_bulk_sends_through_both_workers_all_succeed(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    sessions = [new_session_id() for _ in range(6)]
    # The same sessions, named in one order by some batches and in the other by the rest;
    # 50 messages each, so that the transactions overlap.
    batches = [
        [
            {"sessionId": s, "message": "bulk"}
            for s in sessions[:: 1 if i % 2 else -1]
            for _ in range(50)
        ]
        for i in range(6)
    ]
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):  # bounded rounds; one refusal is enough
            answers = await asyncio.gather(
                *(
                    client.put(
                        f"{worker.base_url}/api/teaser-messages", headers=DEMO_HEADERS, json=batch
                    )
                    for worker, batch in zip(itertools.cycle(two_workers), batches, strict=False)
                )
            )
            statuses += [answer.status_code for answer in answers]
            if set(statuses) != {201}:
                break

    assert set(statuses) == {201}, tracebacks(*two_workers)
