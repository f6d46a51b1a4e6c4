"""teaser_client against a real server: both clients, one test body each, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from teaser_client import (
    AsyncTeaser,
    Draft,
    InvalidInput,
    Message,
    NotFound,
    Priority,
    RateLimited,
    ServerError,
    Teaser,
    TeaserError,
    Unauthorized,
    Unreachable,
)

from tests.conftest import ServerFactory
from tests.support import DEMO_KEY, DEMO_SITE, InProcessServer, free_port, json_of, new_session_id

SEED_MESSAGE = "🎉 Special offer just for you! 20% off chairs today!"


class Client(Protocol):
    """Teaser and AsyncTeaser, as the tests drive them: from the test's event loop."""

    async def send(
        self,
        session_id: str,
        message: str,
        *,
        priority: Priority = ...,
        expires_in: int | None = ...,
        only_on_path: str | None = ...,
        idempotency_key: str | None = ...,
    ) -> Message: ...
    async def send_many(
        self, drafts: Sequence[Draft], *, idempotency_key: str | None = ...
    ) -> list[Message]: ...
    async def status(self, message_id: str) -> Message: ...


class InThread:
    """The blocking client, each call in a thread: the server serves in the test's loop, so
    a blocking call made on that loop would wait for itself."""

    def __init__(self, teaser: Teaser) -> None:
        self.teaser = teaser

    async def send(self, session_id: str, message: str, **options: Any) -> Message:
        return await asyncio.to_thread(self.teaser.send, session_id, message, **options)

    async def send_many(self, drafts: Sequence[Draft], **options: Any) -> list[Message]:
        return await asyncio.to_thread(self.teaser.send_many, drafts, **options)

    async def status(self, message_id: str) -> Message:
        return await asyncio.to_thread(self.teaser.status, message_id)


class Faulty(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The real network, recording each request; the first `lose` answers are read from the
    server and then dropped, as a connection cut after the server committed would."""

    def __init__(self, lose: int = 0) -> None:
        self.lose = lose
        self.sent: list[httpx.Request] = []
        self._sync = httpx.HTTPTransport()
        self._async = httpx.AsyncHTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._sync.handle_request(request)
        response.read()
        return self._arrive(request, response)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._async.handle_async_request(request)
        await response.aread()
        return self._arrive(request, response)

    def _arrive(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        self.sent.append(request)
        if len(self.sent) <= self.lose:
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    def keys(self) -> list[str | None]:
        return [request.headers.get("idempotency-key") for request in self.sent]

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture(params=["sync", "async"])
async def connect(
    request: pytest.FixtureRequest, server: InProcessServer
) -> AsyncIterator[Connect]:
    """Open clients of one kind on the demo site; all are closed after the test."""
    async with contextlib.AsyncExitStack() as opened:

        async def open_client(url: str = server.base_url, **options: Any) -> Client:
            options = {"site_id": DEMO_SITE, "api_key": DEMO_KEY, "backoff": 0.01, **options}
            if request.param == "sync":
                return InThread(opened.enter_context(Teaser(url, **options)))
            return await opened.enter_async_context(AsyncTeaser(url, **options))

        yield open_client


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """A tiny inline app on a real uvicorn and a free port; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def widget_poll(server: InProcessServer, session_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as widget:
        body = {"siteId": DEMO_SITE, "sessionId": session_id}
        response = await widget.post("/api/teaser-messages", json=body)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = json_of(response)["messages"]
    return messages


# --- Round trips ------------------------------------------------------------------------


async def test_a_send_answers_the_stored_message_typed(connect: Connect) -> None:
    client = await connect()
    session = new_session_id()

    sent = await client.send(session, "Chairs 20% off", expires_in=60_000, only_on_path="/chairs*")

    assert sent.id.startswith("tm_")
    assert (sent.session_id, sent.site_id, sent.message) == (session, DEMO_SITE, "Chairs 20% off")
    assert (sent.priority, sent.status, sent.seq, sent.only_on_path) == (
        "manual",
        "pending",
        1,
        "/chairs*",
    )
    assert sent.created_at.tzinfo is not None
    assert sent.expires_at - sent.created_at == timedelta(milliseconds=60_000)


async def test_status_reads_the_message_back_with_how_it_was_delivered(
    connect: Connect, server: InProcessServer
) -> None:
    client = await connect()
    sent = await client.send(new_session_id(), "hello", priority="auto")

    before = await client.status(sent.id)
    await widget_poll(server, sent.session_id)
    after = await client.status(sent.id)

    assert (before.id, before.priority, before.status, before.delivered_via) == (
        sent.id,
        "auto",
        "pending",
        None,
    )
    assert (after.status, after.delivered_via) == ("delivered", "poll")
    assert after.delivered_at is not None and after.delivered_at >= sent.created_at


async def test_send_many_answers_one_message_per_draft_in_order(connect: Connect) -> None:
    client = await connect()
    first, second = new_session_id(), new_session_id()
    drafts = [
        Draft(session_id=first, message="one"),
        Draft(session_id=second, message="other", priority="auto"),
        Draft(session_id=first, message="two", expires_in=5_000),
    ]

    sent = await client.send_many(drafts)

    assert [(m.session_id, m.message, m.seq) for m in sent] == [
        (first, "one", 1),
        (second, "other", 1),
        (first, "two", 2),
    ]
    assert [(await client.status(m.id)).message for m in sent] == ["one", "other", "two"]


async def test_the_seeds_teaser_is_one_line_and_a_widget_poll_receives_it(
    server: InProcessServer,
) -> None:
    url, session = server.base_url, new_session_id()

    def one_line() -> Message:
        # One statement, as docs/api.md shows it: the seed's curl, in Python.
        return Teaser(url, site_id="woodstock_outlet", api_key="woodstock_rt_key_2024").send(
            session, SEED_MESSAGE, expires_in=300_000
        )

    sent = await asyncio.to_thread(one_line)
    [received] = await widget_poll(server, session)

    assert (received["id"], received["message"], received["seq"]) == (sent.id, SEED_MESSAGE, 1)


async def test_a_teaser_sent_by_either_client_reaches_a_widget_poll(
    connect: Connect, server: InProcessServer
) -> None:
    client = await connect()
    session = new_session_id()
    sent = await client.send(session, SEED_MESSAGE)

    assert [m["id"] for m in await widget_poll(server, session)] == [sent.id]


# --- Idempotency and retries ------------------------------------------------------------


async def test_a_send_repeated_with_the_same_key_is_stored_once(
    connect: Connect, server: InProcessServer
) -> None:
    client = await connect()
    session = new_session_id()

    first = await client.send(session, "once", idempotency_key="order-1042-teaser")
    again = await client.send(session, "once", idempotency_key="order-1042-teaser")

    assert again.id == first.id
    assert [m["id"] for m in await widget_poll(server, session)] == [first.id]


async def test_every_send_carries_a_key_of_its_own(connect: Connect) -> None:
    recorder = Faulty()
    client = await connect(transport=recorder)
    session = new_session_id()

    first = await client.send(session, "same words")
    second = await client.send(session, "same words")
    await client.send_many([Draft(session_id=session, message="bulk")])

    keys = recorder.keys()
    assert first.id != second.id
    assert all(keys) and len(set(keys)) == 3


async def test_a_send_whose_answer_was_lost_is_retried_with_the_same_key_and_stored_once(
    connect: Connect, server: InProcessServer
) -> None:
    cut = Faulty(lose=1)
    client = await connect(transport=cut)
    session = new_session_id()

    sent = await client.send(session, "despite the cut")

    [first_key, retry_key] = cut.keys()
    assert first_key == retry_key
    assert [m["id"] for m in await widget_poll(server, session)] == [sent.id]


async def test_a_lost_bulk_answer_is_retried_with_the_same_key_and_stored_once(
    connect: Connect, server: InProcessServer
) -> None:
    cut = Faulty(lose=2)
    client = await connect(transport=cut)
    session = new_session_id()
    drafts = [Draft(session_id=session, message=f"part {n}") for n in (1, 2)]

    sent = await client.send_many(drafts)

    assert len(set(cut.keys())) == 1 and len(cut.sent) == 3
    assert [m["id"] for m in await widget_poll(server, session)] == [m.id for m in sent]


async def test_a_server_error_is_retried_a_bounded_number_of_times_with_one_key(
    connect: Connect,
) -> None:
    keys: list[str | None] = []

    async def unavailable(request: Request) -> JSONResponse:
        keys.append(request.headers.get("idempotency-key"))
        error = {"code": "store_unavailable", "message": "the database is not answering"}
        return JSONResponse({"error": error}, status_code=503)

    app = Starlette(routes=[Route("/api/teaser-messages", unavailable, methods=["PUT"])])
    async with serving(app) as url:
        client = await connect(url, retries=3)
        with pytest.raises(ServerError) as refused:
            await client.send(new_session_id(), "hello")

    assert (refused.value.status, refused.value.code) == (503, "store_unavailable")
    assert len(keys) == 4 and len(set(keys)) == 1 and keys[0]


async def test_no_answer_at_all_raises_unreachable_after_the_retries(connect: Connect) -> None:
    client = await connect(f"http://127.0.0.1:{free_port()}", retries=1)

    with pytest.raises(Unreachable) as failed:
        await client.status("tm_anything")

    assert (failed.value.status, failed.value.code) == (None, "unreachable")
    assert isinstance(failed.value.__cause__, httpx.ConnectError)


# --- Typed refusals ---------------------------------------------------------------------


async def with_a_wrong_key(connect: Connect) -> None:
    await (await connect(api_key="not_the_key")).send(new_session_id(), "hi")


async def with_an_empty_message(connect: Connect) -> None:
    await (await connect()).send(new_session_id(), "   ")


async def with_an_expiry_below_a_second(connect: Connect) -> None:
    await (await connect()).send(new_session_id(), "hi", expires_in=10)


async def with_one_bad_draft_in_a_bulk_send(connect: Connect) -> None:
    session = new_session_id()
    drafts = [Draft(session_id=session, message="fine"), Draft(session_id=session, message="")]
    await (await connect()).send_many(drafts)


async def with_a_key_reused_for_another_message(connect: Connect) -> None:
    client = await connect()
    session = new_session_id()
    await client.send(session, "first", idempotency_key="reused")
    await client.send(session, "second", idempotency_key="reused")


async def for_an_unknown_message(connect: Connect) -> None:
    await (await connect()).status("tm_no_such_message")


REFUSALS = [
    (with_a_wrong_key, Unauthorized, 401, "invalid_credentials", ""),
    (with_an_empty_message, InvalidInput, 422, "invalid_field", "message:"),
    (with_an_expiry_below_a_second, InvalidInput, 422, "invalid_field", "expiresIn:"),
    (with_one_bad_draft_in_a_bulk_send, InvalidInput, 422, "invalid_field", "[1].message:"),
    (with_a_key_reused_for_another_message, InvalidInput, 422, "invalid_field", "Idempotency"),
    (for_an_unknown_message, NotFound, 404, "message_not_found", ""),
]


@pytest.mark.parametrize(
    ("call", "kind", "status", "code", "says"),
    [pytest.param(*case, id=case[0].__name__.replace("_", " ")) for case in REFUSALS],
)
async def test_a_refusal_raises_its_typed_error_with_the_servers_code(
    connect: Connect,
    call: Callable[[Connect], Awaitable[None]],
    kind: type[TeaserError],
    status: int,
    code: str,
    says: str,
) -> None:
    with pytest.raises(kind) as refused:
        await call(connect)

    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.message.startswith(says)
    assert code in str(refused.value)


async def test_a_rate_limited_send_says_when_to_retry(
    connect: Connect, start_server: ServerFactory, tmp_path: Path
) -> None:
    limited = await start_server(
        sends_per_second=1, database_url=f"sqlite+aiosqlite:///{tmp_path / 'limited.db'}"
    )
    client = await connect(limited.base_url)
    await client.send(new_session_id(), "first")

    with pytest.raises(RateLimited) as refused:
        await client.send(new_session_id(), "second")

    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
