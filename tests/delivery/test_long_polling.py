"""POST /api/teaser-messages with `wait`: a poll held until its session has a teaser, for
visitors whose network lets no WebSocket through. Same claim, same once-only delivery and
`since` recovery as a plain poll; no database read while it waits; woken across workers."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlalchemy import Engine, event
from websockets.asyncio.client import connect

from realtime.delivery.waiting import HeldPoll
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, InProcessServer, ServerProcess, json_of, new_session_id

SITE = "woodstock_outlet"


async def send(client: httpx.AsyncClient, session: str, message: str, base: str = "") -> dict:
    response = await client.put(
        f"{base}/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": message},
    )
    assert response.status_code == 201, response.text
    return json_of(response)


async def long_poll(
    client: httpx.AsyncClient, session: str, wait: object, base: str = "", **body: object
) -> httpx.Response:
    return await client.post(
        f"{base}/api/teaser-messages",
        json={"sessionId": session, "siteId": SITE, "wait": wait, **body},
        timeout=40,
    )


async def held(client: httpx.AsyncClient, server: InProcessServer, session: str) -> None:
    """Wait until the server holds a poll of this session."""
    assert server.runtime is not None
    for _ in range(200):
        if (SITE, session) in server.runtime.held_polls._held:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the poll was never held")


@pytest.fixture
async def any_database_server(start_server: ServerFactory, database_url: str) -> InProcessServer:
    return await start_server(database_url=database_url)


async def test_a_held_poll_answers_as_soon_as_a_teaser_is_sent(
    any_database_server: InProcessServer,
) -> None:
    session = new_session_id()
    async with httpx.AsyncClient(base_url=any_database_server.base_url) as client:
        polling = asyncio.create_task(long_poll(client, session, 20_000))
        await held(client, any_database_server, session)
        sent = await send(client, session, "while you wait")
        started = time.monotonic()
        answer = json_of(await polling)
        answered_after = time.monotonic() - started

    assert [m["id"] for m in answer["messages"]] == [sent["id"]]
    assert answer["wait"] == 20_000 and answer["pollInterval"] == 8000
    assert answered_after < 5  # at once, not at the end of the 20 s


async def test_a_held_poll_with_nothing_sent_answers_empty_when_the_wait_is_over(
    client: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    answer = json_of(await long_poll(client, new_session_id(), 600))

    assert answer == {"messages": [], "pollInterval": 8000, "wait": 600}
    assert time.monotonic() - started >= 0.6


async def test_a_message_already_waiting_is_answered_without_holding(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    sent = await send(client, session, "already here")

    answer = json_of(await long_poll(client, session, 20_000))

    assert [m["id"] for m in answer["messages"]] == [sent["id"]]


async def test_the_server_holds_no_longer_than_its_own_bound(
    start_server: ServerFactory,
) -> None:
    server = await start_server(long_poll_seconds=1)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = json_of(await long_poll(client, new_session_id(), 30_000))

    assert answer["wait"] == 1000 and answer["messages"] == []


async def test_with_long_polling_off_a_poll_that_asks_to_wait_is_answered_at_once(
    start_server: ServerFactory,
) -> None:
    server = await start_server(long_poll_seconds=0)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        started = time.monotonic()
        answer = json_of(await long_poll(client, new_session_id(), 20_000))

    assert answer == {"messages": [], "pollInterval": 8000}  # no `wait`: poll on the interval
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("wait", [-1, 30_001, 1.5, "soon", True, None])
async def test_a_wait_out_of_bounds_is_refused_with_its_reason(
    any_database_server: InProcessServer, wait: object
) -> None:
    session = new_session_id()
    async with httpx.AsyncClient(base_url=any_database_server.base_url) as client:
        kept = await send(client, session, "kept")
        refused = await long_poll(client, session, wait)
        answer = json_of(await long_poll(client, session, 0))

    assert refused.status_code == 422
    assert json_of(refused)["error"]["message"].startswith("wait: must be whole milliseconds")
    assert [m["id"] for m in answer["messages"]] == [kept["id"]]  # nothing lost


async def test_a_held_poll_reads_nothing_from_the_database_while_it_waits(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    statements: list[str] = []

    def record(*args: object) -> None:
        # What a poll would read, from a request: the worker's own jobs (settle, purge) run
        # in tasks named after them, on their own clocks.
        task = asyncio.current_task()
        statement = str(args[2])
        if task is not None and task.get_name().startswith("Task-"):
            if "teaser_messages" in statement:
                statements.append(statement)

    polling = asyncio.create_task(long_poll(client, session, 20_000))
    await held(client, server, session)
    await asyncio.sleep(0.3)  # the first look (the index: nothing waiting) is over
    event.listen(Engine, "before_cursor_execute", record)
    try:
        await asyncio.sleep(1.5)
        while_held = list(statements)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    await send(client, session, "wake up")
    answer = json_of(await polling)

    assert while_held == []
    assert [m["message"] for m in answer["messages"]] == ["wake up"]


async def test_a_newer_poll_of_the_session_ends_the_one_held_before_it(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    first = asyncio.create_task(long_poll(client, session, 20_000))
    await held(client, server, session)
    second = asyncio.create_task(long_poll(client, session, 20_000))

    ended = json_of(await asyncio.wait_for(first, 5))
    sent = await send(client, session, "to the newer poll")
    taken = json_of(await asyncio.wait_for(second, 5))

    assert ended["messages"] == []
    assert [m["id"] for m in taken["messages"]] == [sent["id"]]


async def test_a_teaser_taken_by_the_socket_is_not_given_to_a_held_poll_too(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    polling = asyncio.create_task(long_poll(client, session, 1500))
    await held(client, server, session)
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"
    async with connect(url) as socket:
        sent = await send(client, session, "once")
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
        answer = json_of(await polling)

    assert frame["id"] == sent["id"]
    assert answer["messages"] == []


async def test_a_held_poll_with_since_recovers_first_then_waits_for_what_is_new(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    first = await send(client, session, "first")
    json_of(await long_poll(client, session, 0))  # taken, but say it never arrived

    recovered = json_of(await long_poll(client, session, 20_000, since=0))
    polling = asyncio.create_task(long_poll(client, session, 20_000, since=first["seq"]))
    await held(client, server, session)
    second = await send(client, session, "second")
    fresh = json_of(await polling)

    assert ([m["id"] for m in recovered["messages"]], recovered["recovered"]) == (
        [first["id"]],
        True,
    )
    assert ([m["id"] for m in fresh["messages"]], fresh["recovered"]) == ([second["id"]], True)


async def test_past_the_address_quota_a_poll_is_answered_at_once_as_a_plain_one(
    start_server: ServerFactory,
) -> None:
    server = await start_server(sockets_per_ip=1)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        holding = new_session_id()
        first = asyncio.create_task(long_poll(client, holding, 20_000))
        await held(client, server, holding)
        second = json_of(await asyncio.wait_for(long_poll(client, new_session_id(), 20_000), 5))
        sent = await send(client, holding, "still held")
        answer = json_of(await first)

    assert second == {"messages": [], "pollInterval": 8000}
    assert [m["id"] for m in answer["messages"]] == [sent["id"]]


async def test_past_the_worker_capacity_a_poll_is_answered_at_once(
    start_server: ServerFactory,
) -> None:
    server = await start_server(long_polls=1)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        holding = new_session_id()
        first = asyncio.create_task(long_poll(client, holding, 1000))
        await held(client, server, holding)
        second = json_of(await asyncio.wait_for(long_poll(client, new_session_id(), 20_000), 5))
        await first

    assert second == {"messages": [], "pollInterval": 8000}


async def test_a_stopping_server_answers_its_held_polls_at_once(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        session = new_session_id()
        polling = asyncio.create_task(long_poll(client, session, 25_000))
        await held(client, server, session)
        started = time.monotonic()
        await server.stop()
        stopped_after = time.monotonic() - started
        answer = await polling

    assert answer.status_code == 200 and json_of(answer)["messages"] == []
    assert answer.headers["connection"] == "close"  # the next poll goes to another worker
    assert stopped_after < 5  # not the 25 s of the wait


async def test_the_held_polls_are_a_published_gauge(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    polling = asyncio.create_task(long_poll(client, session, 20_000))
    await held(client, server, session)
    while_held = (await client.get("/metrics")).text
    await send(client, session, "done")
    await polling

    assert "teaser_held_polls 1.0" in while_held


async def test_a_send_on_worker_a_wakes_a_poll_held_on_worker_b(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    async with httpx.AsyncClient() as client:
        polling = asyncio.create_task(long_poll(client, session, 20_000, worker_b.base_url))
        await asyncio.sleep(0.5)  # held on B (its first look found nothing)
        sent = await send(client, session, "across workers", worker_a.base_url)
        started = time.monotonic()
        answer = json_of(await polling)
        answered_after = time.monotonic() - started

    assert [m["id"] for m in answer["messages"]] == [sent["id"]]
    assert answered_after < 5


async def test_a_held_poll_whose_client_goes_away_takes_nothing(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    session = new_session_id()
    async with httpx.AsyncClient(base_url=server.base_url) as leaving:
        polling = asyncio.create_task(long_poll(leaving, session, 20_000))
        await held(leaving, server, session)
        polling.cancel()  # the tab went away: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await polling
    for _ in range(200):
        if (SITE, session) not in server.runtime.held_polls._held:
            break
        await asyncio.sleep(0.01)
    sent = await send(client, session, "for whoever polls next")
    answer = json_of(await long_poll(client, session, 0))

    assert (SITE, session) not in server.runtime.held_polls._held
    assert [m["id"] for m in answer["messages"]] == [sent["id"]]


async def test_a_plain_poll_of_the_session_ends_the_one_held_before_it(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    holding = asyncio.create_task(long_poll(client, session, 20_000))
    await held(client, server, session)
    plain = json_of(await long_poll(client, session, 0))
    ended = json_of(await asyncio.wait_for(holding, 5))

    assert plain == {"messages": [], "pollInterval": 8000}
    assert ended["messages"] == []


async def test_a_held_poll_cancelled_as_it_is_woken_ends_cancelled() -> None:
    """Cancelled (its worker stopping) at the moment a send marks its session: the wait
    must end with the cancel, not report MARKED and go on to claim a message for an answer
    never read (Python 3.11's wait_for swallowed such a cancel)."""
    poll = HeldPoll()
    waiting = asyncio.create_task(poll.woken(time.monotonic() + 5, recheck=5))
    await asyncio.sleep(0)  # it waits

    poll.wake()
    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
