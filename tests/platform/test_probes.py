"""The probes an orchestrator uses: /livez asks only the event loop, /readyz the database
and the broker, and a SIGTERM makes /readyz answer 503 at once while everything else is
served on for TEASER_DRAIN_SECONDS. With TEASER_OPS_PORT they move off the public port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime.platform import Settings
from tests.faults.proxy import Fault, FaultProxy
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    POSTGRES_URL,
    InProcessServer,
    TeaserServe,
    drop_postgres_database,
    free_port,
    fresh_postgres_database,
    json_of,
    make_settings,
    new_session_id,
    require_redis,
)


@contextlib.asynccontextmanager
async def probed(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A real server in this event loop, and a client for its probes."""
    server = InProcessServer(settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
            yield client
    finally:
        await server.stop()


async def probe(client: httpx.AsyncClient, path: str) -> tuple[int, Any]:
    answer = await client.get(path)
    return answer.status_code, json_of(answer)


@pytest.fixture
async def database_behind_a_proxy() -> AsyncIterator[tuple[str, FaultProxy]]:
    url = await fresh_postgres_database()
    shared = httpx.URL(POSTGRES_URL.replace("postgresql+asyncpg", "http"))
    proxy = FaultProxy(shared.port or 5432, shared.host)
    await proxy.start()
    try:
        yield url.replace(f"{shared.host}:{shared.port}", f"127.0.0.1:{proxy.port}"), proxy
    finally:
        await proxy.stop()
        await drop_postgres_database(url)


async def test_a_worker_with_its_database_and_broker_is_live_and_ready(tmp_path: Path) -> None:
    async with probed(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db")) as client:
        assert await probe(client, "/livez") == (200, {"status": "ok"})
        assert await probe(client, "/readyz") == (
            200,
            {"status": "ready", "database": "ok", "broker": "in-process"},
        )


async def test_without_its_database_a_worker_is_live_but_not_ready_until_it_is_back(
    database_behind_a_proxy: tuple[str, FaultProxy],
) -> None:
    url, proxy = database_behind_a_proxy
    async with probed(make_settings(database_url=url)) as client:
        assert (await probe(client, "/readyz"))[0] == 200
        proxy.fault = Fault.REFUSE
        proxy.cut()
        assert await probe(client, "/livez") == (200, {"status": "ok"})
        assert await probe(client, "/readyz") == (
            503,
            {"status": "unavailable", "database": "unreachable", "broker": "in-process"},
        )
        assert (await probe(client, "/healthz"))[0] == 503
        proxy.fault = Fault.NONE
        assert await eventually(client, "/readyz", 200)


async def test_a_stalled_database_gets_a_probe_answered_within_a_second(
    database_behind_a_proxy: tuple[str, FaultProxy],
) -> None:
    url, proxy = database_behind_a_proxy
    async with probed(make_settings(database_url=url)) as client:
        proxy.fault = Fault.STALL
        proxy.cut()
        started = time.monotonic()
        status, body = await probe(client, "/readyz")
        assert (status, body["database"]) == (503, "unreachable")
        assert time.monotonic() - started < 1.0
        proxy.fault = Fault.NONE


async def test_without_redis_a_worker_is_live_degraded_and_not_ready(tmp_path: Path) -> None:
    redis_url = httpx.URL((await require_redis()).replace("redis://", "http://"))
    proxy = FaultProxy(redis_url.port or 6379, redis_url.host)
    await proxy.start()
    try:
        async with probed(
            make_settings(
                database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", redis_url=proxy.url()
            )
        ) as client:
            assert await eventually(client, "/readyz", 200)
            proxy.fault = Fault.REFUSE
            proxy.cut()
            assert await probe(client, "/livez") == (200, {"status": "ok"})
            assert await probe(client, "/readyz") == (
                503,
                {"status": "unavailable", "database": "ok", "broker": "unreachable"},
            )
            # /healthz stays 200 for those who'd rather keep a worker whose polls still
            # deliver everything in rotation (docs/deploy.md).
            status, body = await probe(client, "/healthz")
            assert (status, body["status"]) == (200, "degraded")
            proxy.fault = Fault.NONE
            assert await eventually(client, "/readyz", 200, within=10)
    finally:
        await proxy.stop()


async def test_on_sigterm_readyz_answers_503_at_once_and_sockets_are_served_through_the_drain(
    tmp_path: Path,
) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/t.db",
        "TEASER_DRAIN_SECONDS": "3",
    }
    server = TeaserServe(env, tmp_path)
    await asyncio.to_thread(server.start)
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={DEMO_SITE}"
    try:
        async with (
            httpx.AsyncClient(base_url=server.base_url) as client,
            connect(url) as socket,
        ):
            assert (await probe(client, "/readyz"))[0] == 200
            assert server.process is not None
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            assert await probe(client, "/readyz") == (
                503,
                {"status": "draining", "database": "ok", "broker": "in-process"},
            )
            assert await probe(client, "/livez") == (200, {"status": "ok"})
            sent = await client.put(
                "/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": session, "message": "Still here while draining"},
            )
            assert sent.status_code == 201
            assert (await next_teaser(socket))["message"] == "Still here while draining"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(next_teaser(socket, timeout=10), 10)
            drained_for = time.monotonic() - signalled
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert 2.5 < drained_for < 8, drained_for
        # uvicorn re-raises the signal once it has shut down, so the exit is SIGTERM's own.
        assert await asyncio.to_thread(server.process.wait, 15) in (0, -signal.SIGTERM)
        assert "not ready from now on; serving 3s more" in server.log()
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_ops_port_serves_metrics_and_probes_for_every_worker_and_nothing_else(
    tmp_path: Path,
) -> None:
    url = await fresh_postgres_database()
    ops = free_port()
    env = {"DATABASE_URL": url, "REDIS_URL": await require_redis(), "TEASER_OPS_PORT": str(ops)}
    server = TeaserServe(env, tmp_path, "--workers", "2")
    await asyncio.to_thread(server.start)
    try:
        async with (
            httpx.AsyncClient(base_url=server.base_url) as public,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops}") as private,
        ):
            for path in ("/metrics", "/livez", "/readyz"):
                assert (await private.get(path)).status_code == 200, path
                refused = await public.get(path)
                assert refused.status_code == 404, path
                assert json_of(refused)["error"]["code"] == "not_found"
            assert "teaser_" in (await private.get("/metrics")).text
            assert (await public.get("/healthz")).status_code == 200
            assert (await private.get("/healthz")).status_code == 200
            assert (await private.get("/widget.js")).status_code == 404
            assert (
                await private.put("/api/teaser-messages", headers=DEMO_HEADERS)
            ).status_code == 404
            assert (await public.get("/widget.js")).status_code == 200
    finally:
        await asyncio.to_thread(server.stop)
        await drop_postgres_database(url)


async def eventually(
    client: httpx.AsyncClient, path: str, status: int, within: float = 5.0
) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await client.get(path)).status_code == status:
            return True
        await asyncio.sleep(0.2)
    return False


async def next_teaser(socket: Any, timeout: float = 2.0) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if frame["type"] == "teaser":
            return dict(frame)
