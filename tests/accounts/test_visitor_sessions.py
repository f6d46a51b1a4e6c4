"""Visitor session tokens: each lives 30 days, and every token of a session ends when the
site ends the session or erases the person, on every worker, after a restart too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.accounts import TOKEN_LIFETIME_MS, SessionTokens
from realtime.delivery import CloseCode
from realtime.platform import Unauthorized
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, DEMO_SITE, InProcessServer, ServerProcess, json_of

SECRET = b"k" * 32
DAY_MS = 86_400_000


class MovableClock:
    def __init__(self, now: int = 1_764_582_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# --- Lifetime --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "age_ms,good",
    [
        (0, True),
        (29 * DAY_MS, True),
        (TOKEN_LIFETIME_MS - 1000, True),
        (TOKEN_LIFETIME_MS, False),
        (365 * DAY_MS, False),
        (-30_000, True),  # a worker whose clock is a little behind the one that issued it
        (-3_600_000, False),  # issued an hour in the future: not by any worker of ours
    ],
)
def test_a_token_lives_thirty_days(age_ms: int, good: bool) -> None:
    clock = MovableClock()
    tokens = SessionTokens(SECRET, required=True, clock=clock)
    token = tokens.issue(DEMO_SITE, "sess_1")
    clock.now += age_ms

    if good:
        tokens.check(DEMO_SITE, "sess_1", token)
    else:
        with pytest.raises(Unauthorized):
            tokens.check(DEMO_SITE, "sess_1", token)


def test_a_token_cannot_be_made_younger_by_editing_its_date() -> None:
    clock = MovableClock()
    tokens = SessionTokens(SECRET, required=True, clock=clock)
    token = tokens.issue(DEMO_SITE, "sess_1")
    clock.now += TOKEN_LIFETIME_MS + DAY_MS
    _, signature = token.split(".")
    fresh_date = tokens.issue(DEMO_SITE, "sess_1").split(".")[0]

    with pytest.raises(Unauthorized):
        tokens.check(DEMO_SITE, "sess_1", f"{fresh_date}.{signature}")


@pytest.mark.parametrize(
    "forged",
    [
        "",
        ".",
        "abc",  # no date
        "zzzzzzzzz.x",  # a date past any bound
        "-1.x",
        "１２.x",  # full-width digits
        "tpemy1.",  # no signature
    ],
)
def test_a_malformed_token_is_simply_wrong(forged: str) -> None:
    with pytest.raises(Unauthorized):
        SessionTokens(SECRET, required=True).check(DEMO_SITE, "sess_1", forged)


# --- Revocation, over a real server ----------------------------------------------------------


@pytest.fixture
async def client(start_server: ServerFactory) -> AsyncIterator[httpx.AsyncClient]:
    server = await start_server(require_session_token=True)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        http.server = server  # type: ignore[attr-defined]
        yield http


async def mint(client: httpx.AsyncClient) -> tuple[str, str]:
    body = json_of(await client.post("/api/sessions", json={"siteId": DEMO_SITE}))
    return body["sessionId"], body["token"]


async def poll(client: httpx.AsyncClient, session: str, token: str | None) -> httpx.Response:
    body: dict[str, Any] = {"siteId": DEMO_SITE, "sessionId": session}
    if token is not None:
        body["token"] = token
    return await client.post("/api/teaser-messages", json=body)


async def report(client: httpx.AsyncClient, session: str, token: str) -> httpx.Response:
    event = {"siteId": DEMO_SITE, "sessionId": session, "token": token, "type": "page_view"}
    return await client.post("/api/events", json=event)


async def open_socket(server: InProcessServer, session: str, token: str) -> int:
    """The status the session socket's upgrade is answered with (101 when it opens)."""
    url = f"{server.ws_url}/api/teaser-ws?siteId={DEMO_SITE}&sessionId={session}&token={token}"
    try:
        async with connect(url):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def end_by_the_site(client: httpx.AsyncClient, session: str, token: str) -> None:
    ended = await client.delete(f"/api/sessions/{session}", headers=DEMO_HEADERS)
    assert ended.status_code == 204


async def end_by_erasure(client: httpx.AsyncClient, session: str, token: str) -> None:
    event = {
        "siteId": DEMO_SITE,
        "sessionId": session,
        "token": token,
        "type": "page_view",
        "customerEmail": f"{session}@example.com",
    }
    assert (await client.post("/api/events", json=event)).status_code == 202
    erased = await client.post(
        "/api/privacy/erase", json={"email": f"{session}@example.com"}, headers=DEMO_HEADERS
    )
    assert json_of(erased)["sessions"] == 1


ENDINGS = [
    pytest.param(end_by_the_site, id="the site ends it"),
    pytest.param(end_by_erasure, id="the person is erased"),
]


@pytest.mark.parametrize("end", ENDINGS)
async def test_an_ended_session_is_refused_everywhere_its_token_was_good(
    client: httpx.AsyncClient, end: Callable[..., Awaitable[None]]
) -> None:
    server: InProcessServer = client.server  # type: ignore[attr-defined]
    session, token = await mint(client)
    other, other_token = await mint(client)
    assert (await poll(client, session, token)).status_code == 200

    await end(client, session, token)

    refused = [await poll(client, session, token), await report(client, session, token)]
    assert [(r.status_code, json_of(r)["error"]["code"]) for r in refused] == [
        (401, "invalid_session_token")
    ] * 2
    assert await open_socket(server, session, token) == 401
    # Nobody else's session is touched.
    assert (await poll(client, other, other_token)).status_code == 200
    assert await open_socket(server, other, other_token) == 101


@pytest.mark.parametrize("end", ENDINGS)
async def test_an_open_socket_of_an_ended_session_is_closed_as_signed_out(
    client: httpx.AsyncClient, end: Callable[..., Awaitable[None]]
) -> None:
    server: InProcessServer = client.server  # type: ignore[attr-defined]
    session, token = await mint(client)
    other, other_token = await mint(client)
    base = f"{server.ws_url}/api/teaser-ws?siteId={DEMO_SITE}"
    async with (
        connect(f"{base}&sessionId={session}&token={token}") as ended,
        connect(f"{base}&sessionId={other}&token={other_token}") as kept,
    ):
        await end(client, session, token)
        await asyncio.wait_for(ended.wait_closed(), 2)
        assert ended.close_code == CloseCode.SIGNED_OUT
        assert kept.state.name == "OPEN"


async def test_an_ended_session_is_refused_even_where_tokens_are_optional(
    start_server: ServerFactory,
) -> None:
    server = await start_server(require_session_token=False)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        session, token = await mint(client)
        await end_by_the_site(client, session, token)
        without_token = await poll(client, session, None)

    assert (without_token.status_code, json_of(without_token)["error"]["code"]) == (
        401,
        "invalid_session_token",
    )


async def test_a_site_cannot_end_another_sites_session(client: httpx.AsyncClient) -> None:
    server: InProcessServer = client.server  # type: ignore[attr-defined]
    assert server.runtime is not None
    _, key_b = await server.runtime.sites.create("site-b")
    session, token = await mint(client)

    ended = await client.delete(
        f"/api/sessions/{session}", headers={"X-API-Key": key_b, "X-Site-ID": "site-b"}
    )

    assert ended.status_code == 204  # site B ended its own (empty) session of that name
    assert (await poll(client, session, token)).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong", "X-Site-ID": DEMO_SITE}])
async def test_ending_a_session_needs_the_sites_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    session, token = await mint(client)
    ended = await client.delete(f"/api/sessions/{session}", headers=headers)

    assert ended.status_code == 401
    assert (await poll(client, session, token)).status_code == 200


async def test_an_ended_session_is_refused_by_every_worker_and_after_a_restart(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": postgres_url, "TEASER_SECRET_KEY": "k" * 40}
    env["TEASER_REQUIRE_SESSION_TOKEN"] = "true"
    first, second = ServerProcess(env, tmp_path), ServerProcess(env, tmp_path)
    await asyncio.gather(*(asyncio.to_thread(worker.start) for worker in (first, second)))
    try:
        on_first = httpx.AsyncClient(base_url=first.base_url)
        session, token = await mint(on_first)
        url = f"ws://127.0.0.1:{second.port}/api/teaser-ws?siteId={DEMO_SITE}"
        async with (
            connect(f"{url}&sessionId={session}&token={token}") as socket,
            httpx.AsyncClient(base_url=second.base_url) as on_second,
        ):
            await end_by_the_site(on_first, session, token)
            # The second worker learns of it at its next refresh, every 2 s.
            await asyncio.wait_for(socket.wait_closed(), 4)
            assert socket.close_code == CloseCode.SIGNED_OUT
            answer = await poll(on_second, session, token)
            assert answer.status_code == 401
        await asyncio.to_thread(second.stop)
        await asyncio.to_thread(second.start)
        async with httpx.AsyncClient(base_url=second.base_url) as restarted:
            assert (await poll(restarted, session, token)).status_code == 401
        await on_first.aclose()
    finally:
        await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in (first, second)))
