"""POST /api/teaser-messages: the widget's poll. Public, origin-checked, each message once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import Engine, event, select

from realtime.platform.tables import teaser_polls
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, InProcessServer, json_of, new_session_id

SITE = "woodstock_outlet"


async def send(client: httpx.AsyncClient, session: str, message: str, **extra: object) -> dict:
    response = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": message, **extra},
    )
    assert response.status_code == 201, response.text
    return json_of(response)


async def poll(client: httpx.AsyncClient, session: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/api/teaser-messages", json={"sessionId": session, "siteId": SITE}, headers=headers
    )


async def test_a_poll_returns_pending_messages_once_in_send_order(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    first = await send(client, session, "first")
    second = await send(client, session, "second")

    taken = json_of(await poll(client, session))
    again = json_of(await poll(client, session))

    assert taken["pollInterval"] == 8000
    assert [m["id"] for m in taken["messages"]] == [first["id"], second["id"]]
    assert set(taken["messages"][0]) == {
        "id",
        "seq",
        "message",
        "priority",
        "createdAt",
        "expiresAt",
    }
    assert again["messages"] == []


async def test_a_polled_message_reports_delivered_by_poll(client: httpx.AsyncClient) -> None:
    session = new_session_id()
    sent = await send(client, session, "hi")
    await poll(client, session)

    status = json_of(await client.get(f"/api/teaser-messages/{sent['id']}", headers=DEMO_HEADERS))

    assert (status["status"], status["deliveredVia"]) == ("delivered", "poll")


async def test_an_expired_message_is_not_returned(client: httpx.AsyncClient) -> None:
    session = new_session_id()
    sent = await send(client, session, "brief", expiresIn=1000)
    await asyncio.sleep(1.1)

    assert json_of(await poll(client, session))["messages"] == []
    status = json_of(await client.get(f"/api/teaser-messages/{sent['id']}", headers=DEMO_HEADERS))
    assert status["status"] == "expired"


async def test_every_poll_is_recorded_as_session_activity(
    client: httpx.AsyncClient, server: InProcessServer
) -> None:
    session = new_session_id()
    for _ in range(3):
        await poll(client, session)
    assert server.runtime is not None
    await server.runtime.presence.flush()

    async with server.runtime.engine.connect() as connection:
        row = (
            await connection.execute(
                select(teaser_polls).where(teaser_polls.c.session_id == session)
            )
        ).one()
    assert (row.site_id, row.poll_count, row.last_transport) == (SITE, 3, "poll")
    assert await server.runtime.presence.active_sessions(SITE, within_ms=3_600_000) == 1


async def test_polls_are_recorded_in_batches_not_one_write_each(
    start_server: ServerFactory,
) -> None:
    server = await start_server(poll_flush_interval=3600, polls_per_session_per_minute=0)
    assert server.runtime is not None
    session = new_session_id()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await asyncio.gather(*(poll(client, session) for _ in range(20)))

    assert server.runtime.presence.unflushed == 1  # 20 polls, one pending upsert
    assert await server.runtime.presence.flush() == 1
    async with server.runtime.engine.connect() as connection:
        count = (await connection.execute(select(teaser_polls.c.poll_count))).scalar_one()
    assert count == 20


async def test_an_unknown_site_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/teaser-messages", json={"sessionId": new_session_id(), "siteId": "nobody"}
    )
    assert (response.status_code, json_of(response)["error"]["code"]) == (401, "unknown_site")


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"siteId": SITE}, "sessionId"),
        ({"sessionId": "sess_1"}, "siteId"),
        ({"sessionId": "sess_1", "siteId": "Bad Site!"}, "siteId"),
        (["sess_1"], "body"),
    ],
)
async def test_a_malformed_poll_is_422(
    client: httpx.AsyncClient, payload: object, field: str
) -> None:
    response = await client.post("/api/teaser-messages", json=payload)
    assert response.status_code == 422
    assert json_of(response)["error"]["message"].startswith(field)


async def test_a_page_from_an_origin_the_site_does_not_allow_is_403(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    await send(client, session, "kept")

    refused = await poll(client, session, Origin="https://evil.example")
    allowed = await poll(client, session, Origin=str(client.base_url).rstrip("/"))

    assert (refused.status_code, json_of(refused)["error"]["code"]) == (403, "origin_not_allowed")
    assert [m["message"] for m in json_of(allowed)["messages"]] == ["kept"]


async def test_a_shop_origin_on_the_allow_list_gets_cors_headers(
    client: httpx.AsyncClient, server: InProcessServer
) -> None:
    assert server.runtime is not None
    await server.runtime.sites.set_origins(SITE, ("https://shop.example",))
    server.runtime.sites._cache.clear()

    preflight = await client.options(
        "/api/teaser-messages",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    response = await poll(client, new_session_id(), Origin="https://shop.example")

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert response.headers["access-control-expose-headers"] == "Retry-After"


async def test_a_poll_with_nothing_pending_does_not_touch_the_database(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    idle, busy = new_session_id(), new_session_id()
    await send(client, busy, "waiting")
    # Every engine of the process: the store runs its statements on its own connection.
    event.listen(Engine, "before_cursor_execute", record)
    try:
        idle_answer = json_of(await poll(client, idle))
        idle_statements = len(statements)
        busy_answer = json_of(await poll(client, busy))
    finally:
        event.remove(Engine, "before_cursor_execute", record)

    assert idle_answer["messages"] == [] and idle_statements == 0
    assert [m["message"] for m in busy_answer["messages"]] == ["waiting"]
    assert statements  # the session with a message did read the store
