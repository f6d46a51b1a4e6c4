"""Real things for tests: databases, Redis, and uvicorn servers on free ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.app import create_app
from api.httpprotocol import HEAD_LIMITED_HTTP
from api.serving import KEEP_ALIVE_TIMEOUT
from api.wsprotocol import LEAN_WEBSOCKETS
from realtime.contract import EventReport
from realtime.platform.clock import now_ms
from realtime.platform.config import Settings
from realtime.runtime import Runtime
from realtime.targeting import VisitorEvent

ROOT = Path(__file__).resolve().parents[1]
DEMO_SITE = "woodstock_outlet"
DEMO_KEY = "woodstock_rt_key_2024"
DEMO_HEADERS = {"X-API-Key": DEMO_KEY, "X-Site-ID": DEMO_SITE}
POSTGRES_URL = os.environ.get(
    "TEASER_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEASER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(service: str, reason: str) -> None:
    """Skip locally when a service is down; under CI the suite must not skip it."""
    message = f"{service} is not reachable ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " and CI=true requires it", pytrace=False)
    pytest.skip(message + "; start it to run these tests")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_session_id() -> str:
    return f"sess_{int(time.time() * 1000)}_{uuid.uuid4().hex[:9]}"


async def fresh_postgres_database() -> str:
    """Create an empty database for one test and return its URL."""
    import asyncpg

    base = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"teaser_t_{uuid.uuid4().hex[:12]}"
    try:
        connection = await asyncpg.connect(base, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", repr(exc))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


async def drop_postgres_database(url: str) -> None:
    import asyncpg

    base = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(base, timeout=3)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_database(kind: str, folder: Path) -> AsyncIterator[str]:
    """An empty database of `kind`: "sqlite", a file in `folder`, or "postgresql", one of
    its own on the shared server, dropped afterwards. Yields its URL."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'teaser.db'}"
        return
    url = await fresh_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


class ShiftedClock:
    """The real time, moved on by `offset` ms (events stored hours ago, a visit that began
    a while back, a teaser expired at once), and by `tick` ms more at every reading."""

    def __init__(self) -> None:
        self.offset = 0
        self.tick = 0

    def __call__(self) -> int:
        self.offset += self.tick
        return now_ms() + self.offset


async def require_redis() -> str:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        unavailable("Redis", repr(exc))
    finally:
        await client.aclose()
    return REDIS_URL


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def event_time(n: int) -> str:
    """A distinct RFC 3339 `ts` for each n, as a browser writes one: the n-th microsecond of
    2026 (n taken modulo about thirty years)."""
    moment = EPOCH + timedelta(microseconds=n % 10**15)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_event(body: dict[str, Any]) -> VisitorEvent:
    """An event as POST /api/events would read it, without the server."""
    return msgspec.convert(body, EventReport).event()


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "development",
        "poll_flush_interval": 0.2,
        # Set per test process (tests/conftest.py): parallel runs share one Redis.
        "redis_prefix": os.environ.get("TEASER_REDIS_PREFIX", ""),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class OnLoopback:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class InProcessServer(OnLoopback):
    """A real uvicorn serving the real app on a free port, inside the test's event loop,
    so a test can also reach the runtime (e.g. to move its clock)."""

    settings: Settings
    runtime: Runtime | None = None
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def open_protocols(self) -> list[asyncio.Protocol]:
        """uvicorn's protocol object of each open connection (HTTP or WebSocket)."""
        assert self._server is not None
        return list(self._server.server_state.connections)

    async def start(self) -> None:
        app = create_app(self.settings, runtime=self.runtime)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            # As shipped (api.serving), so every test meets the server users run.
            http=HEAD_LIMITED_HTTP,
            ws=LEAN_WEBSOCKETS,
            ws_max_size=64 * 1024,
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.02)
        self.runtime = app.state.runtime

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, timeout=15)


class HeldRead:
    """An engine whose first read (through connect()) is held back, its connection given
    back, until released: a read under way, answered but not yet kept by whoever reads,
    while something else happens. Everything else goes straight to the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.answered = asyncio.Event()
        self.released = asyncio.Event()
        self._used = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        first, self._used = not self._used, True
        async with self.engine.connect() as connection:
            yield connection
        if first:
            self.answered.set()
            await self.released.wait()


@asynccontextmanager
async def serving(
    settings: Settings, runtime: Runtime | None = None
) -> AsyncIterator[InProcessServer]:
    """An InProcessServer for a fixture's whole scope: started, and stopped after."""
    live = InProcessServer(settings, runtime=runtime)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


def rules_dir(folder: Path, site: str, rules: str) -> Path:
    """A TEASER_RULES_DIR in `folder` holding `site`'s rules file."""
    directory = folder / "rules"
    directory.mkdir(exist_ok=True)
    (directory / f"{site}.toml").write_text(rules, encoding="utf-8")
    return directory


class ServerProcess(OnLoopback):
    """`uvicorn --factory api.app:create_app` in its own process: for restarts (same port,
    same database) and for several workers sharing one database and one Redis. Blocking,
    so browser tests can use it directly; async tests wrap it in asyncio.to_thread."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        # No drain on SIGTERM unless a test asks for one (tests/platform/test_probes.py).
        self.env = {**os.environ, "TEASER_ENV": "development", "TEASER_DRAIN_SECONDS": "0", **env}
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http",
            HEAD_LIMITED_HTTP,
            "--ws",
            LEAN_WEBSOCKETS,
            "--ws-max-size",
            "65536",
            "--timeout-graceful-shutdown",
            "3",
        ]

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, as a deploy would, so uvicorn closes sockets properly; kill if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@asynccontextmanager
async def running_workers(
    env: dict[str, str], log_dir: Path
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two workers on one database and one Redis, started together, stopped together."""
    workers = (ServerProcess(env, log_dir), ServerProcess(env, log_dir))
    try:
        await asyncio.gather(*(asyncio.to_thread(worker.start) for worker in workers))
        yield workers
    finally:
        await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in workers))


class TeaserServe(ServerProcess):
    """`teaser serve`, as script/server, the Procfile and the container run it: the drain on
    SIGTERM, the ops port and several workers are its own."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, *args: str, port: int | None = None
    ) -> None:
        super().__init__(env, log_dir, port)
        self.args = args

    def command(self) -> list[str]:
        teaser = str(Path(sys.executable).with_name("teaser"))
        return [teaser, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args]


def run_teaser_cli(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `teaser` command on a SQLite file, as an operator would run it."""
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_of(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()


async def stored_teasers(server: InProcessServer) -> int:
    """How many teasers the server's database holds."""
    from sqlalchemy import func, select

    from realtime.platform.tables import teaser_messages

    assert server.runtime is not None
    async with server.runtime.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(teaser_messages)) or 0)
