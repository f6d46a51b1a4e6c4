"""Nothing is lost: a receiver down for 30 s and up again gets every event, once per
webhook-id and in order within each session; a worker killed (-9) in the middle of a batch
leaves its events to the next one. SQLite and PostgreSQL side by side, on one receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from realtime.runtime import Runtime
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    InProcessServer,
    ServerProcess,
    drop_postgres_database,
    fresh_postgres_database,
    json_of,
    make_settings,
    new_session_id,
)
from tests.webhooks.receiver import Behaviour, Receiver, first_of_each

pytestmark = pytest.mark.asyncio(loop_scope="module")
OUTAGE_S = 30.0
SESSIONS = 3
ROUNDS = 3  # per session: a teaser sent, polled (delivered) and clicked, this often


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[str]]:
    sqlite = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('outage')) / 'teaser.db'}"
    postgres = await fresh_postgres_database()
    yield [sqlite, postgres]
    await drop_postgres_database(postgres)


async def activity(http: httpx.AsyncClient, session: str) -> list[tuple[str, str]]:
    """What one session does, and the (type, teaserId) each event reports, in order."""
    expected = []
    for round_ in range(ROUNDS):
        sent = await http.put(
            "/api/teaser-messages",
            json={"sessionId": session, "message": f"round {round_}"},
            headers=DEMO_HEADERS,
        )
        teaser = json_of(sent)["id"]
        await http.post("/api/teaser-messages", json={"siteId": DEMO_SITE, "sessionId": session})
        await http.post(
            "/api/events",
            json={"siteId": DEMO_SITE, "sessionId": session, "type": "teaser_click",
                  "path": "/", "teaserId": teaser},
        )  # fmt: skip
        expected += [("teaser.delivered", teaser), ("teaser.clicked", teaser)]
    return expected


def story(received: list[Any], session: str) -> list[tuple[str, str]]:
    """A session's events as a de-duplicating receiver keeps them, in arrival order."""
    return [
        (each.event["type"], each.event["data"]["teaserId"])
        for each in first_of_each(received)
        if each.event["data"]["sessionId"] == session
    ]


async def test_a_receiver_down_for_30_s_gets_every_event_once_in_order(
    databases: list[str],
) -> None:
    receiver = Receiver()
    await receiver.start()
    servers = []
    for url in databases:
        settings = make_settings(
            database_url=url,
            webhook_allow_private=True,
            webhook_interval=0.1,
            webhook_retry_base=0.5,
            webhook_retry_cap=4.0,
        )
        servers.append(InProcessServer(settings, runtime=Runtime(settings)))
    try:
        for server in servers:  # in turn: migrations in one process run one at a time
            await server.start()
        paths = [f"outage-{n}" for n in range(len(servers))]
        for server, path in zip(servers, paths, strict=True):
            assert server.runtime is not None
            await server.runtime.webhooks.add(
                DEMO_SITE, receiver.url(path), ("teaser.delivered", "teaser.clicked")
            )
        await receiver.stop()
        went_down = time.monotonic()
        expected: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for server, path in zip(servers, paths, strict=True):
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                sessions = [new_session_id() for _ in range(SESSIONS)]
                stories = await asyncio.gather(*(activity(http, s) for s in sessions))
                expected[path] = dict(zip(sessions, stories, strict=True))
        await asyncio.sleep(OUTAGE_S - (time.monotonic() - went_down))
        await receiver.start()

        total = SESSIONS * ROUNDS * 2
        for path, stories in expected.items():
            received = await receiver.wait_for(path, total, timeout=15)
            assert len(received) == total
            for session, events in stories.items():
                assert story(received, session) == events
        # The retries ran all along, spaced by the back-off (at least 0.5 s, no hot loop).
        for server in servers:
            assert server.runtime is not None
            # Received; the sender writes each outcome just after the answer.
            for _ in range(100):
                deliveries = await server.runtime.webhooks.deliveries(DEMO_SITE, 1)
                if all(each.status != "pending" for each in deliveries):
                    break
                await asyncio.sleep(0.05)
            assert {each.status for each in deliveries} == {"delivered"}
            assert 4 <= max(each.attempts for each in deliveries) <= OUTAGE_S / 0.5
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        await receiver.stop()


# ---- kill -9 --------------------------------------------------------------------------


async def killed_mid_batch(
    url: str, receiver: Receiver, path: str, logs: Path
) -> tuple[set[str], set[str]]:
    """Ten teasers delivered to one session; the worker killed after the receiver got
    three of their events, then started again. The event ids sent, and those received."""
    env = {
        "DATABASE_URL": url,
        "TEASER_WEBHOOK_ALLOW_PRIVATE": "true",
        "TEASER_WEBHOOK_INTERVAL": "0.1",
        "TEASER_WEBHOOK_TIMEOUT": "1",  # an endpoint's lease: 2 * 1 + 5 s
        "TEASER_WEBHOOK_RETRY_BASE": "0.2",
    }
    worker = ServerProcess(env, logs)
    await asyncio.to_thread(worker.start)
    try:
        async with httpx.AsyncClient(base_url=worker.base_url, timeout=10) as http:
            added = await http.post(
                "/api/webhooks", json={"url": receiver.url(path)}, headers=DEMO_HEADERS
            )
            assert added.status_code == 201, added.text
            session = new_session_id()
            sent = await http.put(
                "/api/teaser-messages",
                json=[{"sessionId": session, "message": f"#{n}"} for n in range(10)],
                headers=DEMO_HEADERS,
            )
            ids = {f"evt_delivered_{m['id']}" for m in json_of(sent)["messages"]}
            await http.post(
                "/api/teaser-messages", json={"siteId": DEMO_SITE, "sessionId": session}
            )
        await receiver.wait_for(path, 3, timeout=10)
        assert worker.process is not None
        worker.process.kill()  # SIGKILL: nothing is flushed, no lease given back
        worker.process.wait()
        await asyncio.to_thread(worker.start)
        arrived = await receiver.wait_for(path, 10, timeout=20)
        numbers = [json.loads(each.body)["data"]["sessionSeq"] for each in arrived]
        assert numbers == sorted(numbers), numbers
        return ids, {each.id for each in arrived}
    finally:
        await asyncio.to_thread(worker.stop)


async def test_a_worker_killed_mid_batch_loses_nothing(
    databases: list[str], tmp_path: Path
) -> None:
    receiver = Receiver()
    for n in range(len(databases)):
        receiver.behaviours[f"killed-{n}"] = Behaviour(200, delay=0.3)
    await receiver.start()
    try:
        results = await asyncio.gather(
            *(
                killed_mid_batch(url, receiver, f"killed-{n}", tmp_path)
                for n, url in enumerate(databases)
            )
        )
    finally:
        await receiver.stop()
    for sent, received in results:
        assert received == sent
