"""Operator sessions live on the server, on every database: a cookie is good only while
its row is, so signing out, a password reset, removing the operator and "sign out
everywhere" end it at once for every dashboard API and the live socket, on every worker."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.accounts import OperatorRegistry, OperatorSessions
from realtime.delivery import CloseCode
from realtime.platform.database import create_engine
from realtime.platform.tables import operator_sessions
from tests.conftest import ServerFactory
from tests.support import ROOT, InProcessServer, ServerProcess, new_session_id

SITE = "woodstock_outlet"
# How long an open dashboard socket may outlive its session, on its worker or another.
CLOSED_WITHIN = 2.0


@dataclass
class Browser:
    """One signed-in browser: its cookies as they were right after sign-in."""

    base_url: str
    cookies: dict[str, str]
    csrf: str
    email: str

    def client(self, base_url: str | None = None) -> httpx.AsyncClient:
        """A client replaying the captured cookies, as an attacker who copied them would."""
        return httpx.AsyncClient(
            base_url=base_url or self.base_url,
            cookies=self.cookies,
            headers={"X-CSRF-Token": self.csrf, "Origin": base_url or self.base_url},
            timeout=10,
            follow_redirects=False,
        )


async def sign_in(base_url: str, email: str, password: str) -> Browser:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        answer = await client.post(
            "/api/operator/login", json={"siteId": SITE, "email": email, "password": password}
        )
        assert answer.status_code == 200, answer.text
        return Browser(base_url, dict(client.cookies.items()), answer.json()["csrfToken"], email)


async def two_browsers(server: InProcessServer) -> tuple[Browser, Browser]:
    """The same operator signed in twice: this browser, and another (a phone, a laptop)."""
    assert server.runtime is not None
    email = f"op-{new_session_id()[-9:]}@woodstock.example"
    _, password = await server.runtime.operators.create(SITE, email)
    return (
        await sign_in(server.base_url, email, password),
        await sign_in(server.base_url, email, password),
    )


async def sign_out(this: Browser, other: Browser, server: InProcessServer) -> None:
    async with this.client() as client:
        assert (await client.post("/api/operator/logout")).status_code == 204


async def sign_out_everywhere(this: Browser, other: Browser, server: InProcessServer) -> None:
    async with other.client() as client:
        answer = await client.post("/api/operator/logout", params={"everywhere": "true"})
        assert answer.status_code == 204, answer.text


async def reset_password(this: Browser, other: Browser, server: InProcessServer) -> None:
    assert server.runtime is not None
    await server.runtime.operators.reset_password(SITE, this.email)


async def remove_operator(this: Browser, other: Browser, server: InProcessServer) -> None:
    assert server.runtime is not None
    assert await server.runtime.operators.remove(SITE, this.email)


Revocation = Callable[[Browser, Browser, InProcessServer], Awaitable[None]]
REVOCATIONS: dict[str, Revocation] = {
    "logout": sign_out,
    "everywhere": sign_out_everywhere,
    "password-reset": reset_password,
    "removal": remove_operator,
}


async def read_stats(client: httpx.AsyncClient) -> int:
    return (await client.get("/api/stats")).status_code


async def read_me(client: httpx.AsyncClient) -> int:
    return (await client.get("/api/operator/me")).status_code


async def open_page(client: httpx.AsyncClient) -> int:
    answer = await client.get("/dashboard")
    # Signed out, the page sends the browser to sign in instead of answering 401.
    return 401 if answer.headers.get("location") == "/dashboard/login" else answer.status_code


async def send_teaser(client: httpx.AsyncClient) -> int:
    body = {"sessionId": new_session_id(), "message": "Hello from a stolen cookie"}
    return (await client.post("/api/dashboard/teasers", json=body)).status_code


async def open_socket(client: httpx.AsyncClient) -> int:
    base = str(client.base_url).rstrip("/")
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    try:
        async with connect(
            base.replace("http", "ws", 1) + "/api/dashboard/ws",
            additional_headers={"Cookie": cookie, "Origin": base},
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


Use = Callable[[httpx.AsyncClient], Awaitable[int]]
USES: dict[str, tuple[Use, int]] = {
    "read": (read_stats, 200),
    "me": (read_me, 200),
    "page": (open_page, 200),
    "send": (send_teaser, 201),
    "socket": (open_socket, 101),
}


@pytest.fixture
async def server(start_server: ServerFactory, database_url: str) -> InProcessServer:
    return await start_server(database_url=database_url)


@pytest.mark.parametrize("use", USES, ids=list(USES))
@pytest.mark.parametrize("revocation", REVOCATIONS, ids=list(REVOCATIONS))
async def test_a_cookie_captured_before_a_revocation_is_refused_after_it(
    server: InProcessServer, revocation: str, use: str
) -> None:
    this, other = await two_browsers(server)
    attempt, works = USES[use]
    async with this.client() as captured:
        assert await attempt(captured) == works

    await REVOCATIONS[revocation](this, other, server)

    async with this.client() as captured:
        assert await attempt(captured) == 401


@pytest.mark.parametrize(
    ("revocation", "other_survives"),
    [("logout", True), ("everywhere", False), ("password-reset", False), ("removal", False)],
)
async def test_only_signing_out_here_spares_the_operators_other_browser(
    server: InProcessServer, revocation: str, other_survives: bool
) -> None:
    this, other = await two_browsers(server)
    await REVOCATIONS[revocation](this, other, server)
    async with other.client() as client:
        assert await read_stats(client) == (200 if other_survives else 401)


async def next_close(socket: ClientConnection, within: float) -> tuple[int | None, float]:
    """The socket's close code, and how long after now it came (frames are skipped)."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await socket.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, time.monotonic() - started


@pytest.mark.parametrize("revocation", REVOCATIONS, ids=list(REVOCATIONS))
async def test_an_open_dashboard_socket_closes_signed_out_at_its_revocation(
    server: InProcessServer, revocation: str
) -> None:
    this, other = await two_browsers(server)
    async with this.client() as client, await dashboard_socket(server.ws_url, client) as socket:
        await socket.recv()  # hello
        await REVOCATIONS[revocation](this, other, server)
        code, after = await next_close(socket, within=CLOSED_WITHIN + 3)
    assert code == CloseCode.SIGNED_OUT
    assert after < CLOSED_WITHIN


async def dashboard_socket(ws_url: str, client: httpx.AsyncClient) -> ClientConnection:
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    origin = ws_url.replace("ws", "http", 1)
    return await connect(
        f"{ws_url}/api/dashboard/ws", additional_headers={"Cookie": cookie, "Origin": origin}
    )


async def test_everywhere_needs_the_csrf_token_and_a_plain_yes_or_no(
    server: InProcessServer,
) -> None:
    this, _ = await two_browsers(server)
    async with this.client() as client:
        no_token = await client.post(
            "/api/operator/logout", params={"everywhere": "true"}, headers={"X-CSRF-Token": ""}
        )
        garbled = await client.post("/api/operator/logout", params={"everywhere": "perhaps"})
        assert await read_stats(client) == 200
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as stranger:
        nobody = await stranger.post("/api/operator/logout", params={"everywhere": "true"})

    assert (no_token.status_code, no_token.json()["error"]["code"]) == (403, "csrf_failed")
    assert (garbled.status_code, garbled.json()["error"]["code"]) == (422, "invalid_field")
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (401, "not_signed_in")


async def test_only_a_hash_of_the_session_nonce_is_stored(server: InProcessServer) -> None:
    this, _ = await two_browsers(server)
    nonce = this.cookies["teaser_session"].split(".")[2]
    assert server.runtime is not None
    async with server.runtime.engine.connect() as connection:
        stored = set((await connection.execute(select(operator_sessions.c.id))).scalars())
    assert hashlib.sha256(nonce.encode()).hexdigest() in stored
    assert not any(nonce in value for value in stored)


# ---- the store of sessions ------------------------------------------------------------


@pytest.fixture
async def sessions(engine: object) -> AsyncIterator[tuple[OperatorRegistry, OperatorSessions]]:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from realtime.accounts import SiteRegistry

    assert isinstance(engine, AsyncEngine)
    await SiteRegistry(engine).create("acme")
    clock = FakeClock()
    yield OperatorRegistry(engine, clock=clock), OperatorSessions(engine, clock=clock)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


async def test_a_session_ends_at_its_expiry_and_housekeeping_prunes_ended_ones(
    sessions: tuple[OperatorRegistry, OperatorSessions],
) -> None:
    registry, store = sessions
    operator, _ = await registry.create("acme", "ann@acme.example")
    await store.open(operator.id, "nonce-a", address="10.0.0.1", user_agent="Firefox")
    await store.open(operator.id, "nonce-b", address="10.0.0.2", user_agent="Safari")
    await store.revoke(operator.id, "nonce-b")
    assert store.clock is not None
    clock = store.clock
    assert isinstance(clock, FakeClock)

    assert (await store.live(operator.id, "nonce-a")) is not None
    assert (await store.live(operator.id, "nonce-b")) is None
    assert [s.address for s in await store.list_live(operator.id)] == ["10.0.0.1"]
    clock.now += store.ttl_ms
    assert (await store.live(operator.id, "nonce-a")) is None
    assert await store.prune() == 2


async def test_a_session_of_one_operator_is_no_session_of_another(
    sessions: tuple[OperatorRegistry, OperatorSessions],
) -> None:
    registry, store = sessions
    ann, _ = await registry.create("acme", "ann@acme.example")
    bob, _ = await registry.create("acme", "bob@acme.example")
    await store.open(ann.id, "nonce-a", address="10.0.0.1", user_agent="")
    assert (await store.live(bob.id, "nonce-a")) is None
    assert (await store.live(ann.id, "nonce-a")) == ann


# ---- across workers -------------------------------------------------------------------


def teaser_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("how", ["logout", "everywhere", "cli-signout"])
async def test_a_revocation_on_one_worker_ends_the_session_on_the_other_and_its_socket(
    postgres_url: str, redis_url: str, tmp_path: Path, how: str
) -> None:
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "TEASER_SECRET_KEY": "s" * 40}
    a, b = ServerProcess(env, tmp_path), ServerProcess(env, tmp_path)
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    engine = create_engine(postgres_url)
    email = "ops@woodstock.example"
    try:
        _, password = await OperatorRegistry(engine).create(SITE, email)
        this, other = (
            await sign_in(a.base_url, email, password),
            await sign_in(a.base_url, email, password),
        )
        async with this.client(b.base_url) as on_b:
            assert await read_stats(on_b) == 200
            async with await dashboard_socket(b.ws_url, on_b) as socket:
                await socket.recv()  # hello
                if how == "logout":
                    async with this.client() as on_a:
                        assert (await on_a.post("/api/operator/logout")).status_code == 204
                elif how == "everywhere":
                    async with other.client() as on_a:
                        everywhere = {"everywhere": "true"}
                        answer = await on_a.post("/api/operator/logout", params=everywhere)
                        assert answer.status_code == 204
                else:
                    done = await asyncio.to_thread(
                        teaser_cli, env, "operator", "signout", SITE, email
                    )
                    assert done.returncode == 0, done.stderr
                code, after = await next_close(socket, within=CLOSED_WITHIN + 3)
            assert await read_stats(on_b) == 401
    finally:
        await engine.dispose()
        await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))
    assert code == CloseCode.SIGNED_OUT
    assert after < CLOSED_WITHIN
