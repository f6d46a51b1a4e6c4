"""Fixtures: each backend-dependent test runs on every implementation, against the real thing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from tests.redis_servers import RedisClusterNodes
from tests.support import (
    InProcessServer,
    ServerProcess,
    drop_postgres_database,
    fresh_database,
    fresh_postgres_database,
    make_settings,
    require_redis,
    running_workers,
)

# script/test runs the suite in several processes (pytest-xdist), all on the one shared
# Redis: each process's servers, in-process or not, get channels of their own.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TEASER_REDIS_PREFIX", f"test-{worker}:")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    url = await fresh_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return await require_redis()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def nodes(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisClusterNodes]:
    """A Redis Cluster of the asking test module's own (three masters, a replica each), for
    a module that kills its masters: a new one per module."""
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    try:
        await nodes.start()
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of this test process's own (three masters, a replica each), for
    tests that only use it; a test that kills one of its nodes starts a cluster itself."""
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster"))
    try:
        # In a thread: an async test's fixture may ask for this one from inside its loop.
        with ThreadPoolExecutor(1) as aside:
            aside.submit(asyncio.run, nodes.start()).result()
        yield nodes.url
    finally:
        nodes.stop()


@pytest.fixture
async def redis_url() -> str:
    return await require_redis()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


ServerFactory = Callable[..., Awaitable[InProcessServer]]


@pytest.fixture
async def start_server(sqlite_url: str) -> AsyncIterator[ServerFactory]:
    """Start in-process servers with settings overrides; all are stopped after the test."""
    started: list[InProcessServer] = []

    async def start(**overrides: object) -> InProcessServer:
        overrides.setdefault("database_url", sqlite_url)
        live = InProcessServer(make_settings(**overrides))  # type: ignore[arg-type]
        await live.start()
        started.append(live)
        return live

    yield start
    for live in reversed(started):
        await live.stop()


@pytest.fixture
async def server(start_server: ServerFactory) -> InProcessServer:
    """The app on SQLite and the in-process broker: the default a newcomer runs."""
    return await start_server()


@pytest.fixture
async def client(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        yield http


@pytest.fixture(params=["redis", "redis-cluster"])
async def two_workers(
    request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two uvicorn processes on one PostgreSQL database and the shared Redis, or a Redis
    Cluster. Tests that poll as fast as they can (races) would meet the per-session poll
    limit: it is off. A test that talks to Redis itself asks for ["redis"] only."""
    if request.param == "redis":
        redis = await require_redis()
    else:
        redis = str(request.getfixturevalue("redis_cluster_url"))  # a sync fixture: allowed
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis,
        "TEASER_LIMIT_POLLS_PER_SESSION_PER_MINUTE": "0",
    }
    async with running_workers(env, tmp_path) as workers:
        yield workers
