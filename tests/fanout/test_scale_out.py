"""Several real uvicorn workers sharing PostgreSQL and Redis, and restarts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, ServerProcess, json_of, new_session_id

SITE = "woodstock_outlet"


async def test_a_send_on_worker_a_reaches_a_socket_on_worker_b_within_a_second(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    url = f"{worker_b.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"
    async with connect(url) as socket, httpx.AsyncClient() as client:
        await asyncio.sleep(0.1)  # the subscription is made right after the handshake
        started = time.perf_counter()
        response = await client.put(
            f"{worker_a.base_url}/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session, "message": "cross-worker"},
        )
        frame = json.loads(await asyncio.wait_for(socket.recv(), 1.0))
        elapsed = time.perf_counter() - started

    assert response.status_code == 201
    assert (frame["type"], frame["id"]) == ("teaser", json_of(response)["id"])
    assert elapsed < 1.0


@pytest.mark.parametrize("two_workers", ["redis"], indirect=True)
async def test_a_poll_on_worker_b_finds_a_send_made_on_worker_a_without_asking_redis(
    two_workers: tuple[ServerProcess, ServerProcess], redis_url: str
) -> None:
    worker_a, worker_b = two_workers
    session, idle_session = new_session_id(), new_session_id()
    admin = aioredis.from_url(redis_url)
    poll_b = f"{worker_b.base_url}/api/teaser-messages"
    async with httpx.AsyncClient() as client:
        response = await client.put(
            f"{worker_a.base_url}/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session, "message": "marked on every worker"},
        )
        polled: list[str] = []
        for _ in range(20):  # the broadcast reaches worker B about when the 201 does
            answer = await client.post(poll_b, json={"sessionId": session, "siteId": SITE})
            polled += [m["id"] for m in json_of(answer)["messages"]]
            if polled:
                break
            await asyncio.sleep(0.05)
        commands_before = await _redis_commands(admin)
        idle = [
            await client.post(poll_b, json={"sessionId": idle_session, "siteId": SITE})
            for _ in range(50)
        ]
        commands_after = await _redis_commands(admin)
    await admin.aclose()

    assert polled == [json_of(response)["id"]]
    assert all(json_of(answer)["messages"] == [] for answer in idle)
    # 50 idle polls: had each asked Redis, 50 commands. The few counted are INFO itself and
    # the workers' own background traffic.
    assert commands_after - commands_before < 10


async def _redis_commands(admin: aioredis.Redis) -> int:
    stats = await admin.info("stats")
    return int(stats["total_commands_processed"])


async def test_polls_and_sockets_racing_on_two_workers_hand_out_each_message_once(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    received: list[str] = []
    url = f"{worker_b.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"

    async def socket_reader(stop: asyncio.Event) -> None:
        async with connect(url) as socket:
            while not stop.is_set():
                try:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 0.2))
                except TimeoutError:
                    continue
                if frame["type"] == "teaser":
                    received.append(frame["id"])
                    await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))

    async def poller(client: httpx.AsyncClient, base_url: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            polled = await client.post(
                f"{base_url}/api/teaser-messages", json={"sessionId": session, "siteId": SITE}
            )
            received.extend(m["id"] for m in json_of(polled)["messages"])

    async with httpx.AsyncClient(timeout=10) as client:
        stop = asyncio.Event()
        racers = [
            asyncio.create_task(socket_reader(stop)),
            asyncio.create_task(poller(client, worker_a.base_url, stop)),
            asyncio.create_task(poller(client, worker_b.base_url, stop)),
        ]
        sent = []
        for i in range(60):
            base = (worker_a if i % 2 else worker_b).base_url
            response = await client.put(
                f"{base}/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": session, "message": f"m{i}"},
            )
            sent.append(json_of(response)["id"])
        for _ in range(100):
            if len(set(received)) >= len(sent):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*racers)

    assert sorted(received) == sorted(sent)  # all of them, none twice


async def test_a_message_survives_a_server_restart(sqlite_url: str, tmp_path: Path) -> None:
    server = ServerProcess({"DATABASE_URL": sqlite_url}, tmp_path)
    session = new_session_id()
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient() as client:
            sent = json_of(
                await client.put(
                    f"{server.base_url}/api/teaser-messages",
                    headers=DEMO_HEADERS,
                    json={"sessionId": session, "message": "durable"},
                )
            )
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            polled = json_of(
                await client.post(
                    f"{server.base_url}/api/teaser-messages",
                    json={"sessionId": session, "siteId": SITE},
                )
            )
    finally:
        await asyncio.to_thread(server.stop)

    assert [m["id"] for m in polled["messages"]] == [sent["id"]]


async def test_production_mode_never_creates_the_demo_key(sqlite_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqlite_url, "TEASER_ENV": "production", "TEASER_SECRET_KEY": "s" * 40}
    server = ServerProcess(env, tmp_path)
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.put(
                f"{server.base_url}/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": new_session_id(), "message": "x"},
            )
    finally:
        await asyncio.to_thread(server.stop)

    assert response.status_code == 401
    assert "demo" not in server.log().lower()


async def test_a_worker_shutting_down_tells_its_sockets_to_reconnect(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = ServerProcess({"DATABASE_URL": sqlite_url}, tmp_path)
    await asyncio.to_thread(server.start)
    url = f"{server.ws_url}/api/teaser-ws?sessionId={new_session_id()}&siteId={SITE}"
    try:
        async with connect(url) as socket:
            await asyncio.to_thread(server.stop)
            await socket.wait_closed()
            close = socket.close_code
    finally:
        await asyncio.to_thread(server.stop)

    # 1012 "service restart" (uvicorn) or 1001 "going away": both mean "reconnect now".
    assert close in (1001, 1012)


async def test_while_redis_is_down_a_socket_on_another_worker_still_gets_its_message(
    start_server: ServerFactory,
) -> None:
    dead_redis = "redis://127.0.0.1:1/0"  # nothing listens there: both workers are deaf
    worker_a = await start_server(redis_url=dead_redis, poll_interval_ms=500)
    worker_b = await start_server(
        redis_url=dead_redis, poll_interval_ms=500, database_url=worker_a.settings.database_url
    )
    session = new_session_id()
    url = f"{worker_b.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"
    async with connect(url) as socket, httpx.AsyncClient() as client:
        response = await client.put(
            f"{worker_a.base_url}/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session, "message": "despite Redis"},
        )
        started = time.perf_counter()
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 2))
            if frame["type"] == "teaser":
                break
        elapsed = time.perf_counter() - started

    assert response.status_code == 201
    assert frame["message"] == "despite Redis"
    assert elapsed < 1.0  # within one (test-sized) poll interval
