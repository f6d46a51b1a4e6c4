"""A server with no webhook endpoint asks the database nothing about webhooks: its rounds
cost no round trip until an endpoint is there (then they are back within the cache's ttl)."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import Engine, event

from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS

WEBHOOK_TABLES = ("webhook_outbox", "webhook_deliveries")


async def webhook_statements_during(seconds: float) -> list[str]:
    statements: list[str] = []

    def record(*args: object) -> None:
        statement = str(args[2])
        if any(table in statement for table in WEBHOOK_TABLES):
            statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        await asyncio.sleep(seconds)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return statements


async def test_rounds_ask_nothing_while_no_site_has_an_endpoint_and_resume_with_one(
    start_server: ServerFactory,
) -> None:
    server = await start_server(webhook_interval=0.05, webhook_allow_private=True)
    without = await webhook_statements_during(1.0)
    async with httpx.AsyncClient(base_url=server.base_url, headers=DEMO_HEADERS) as client:
        added = await client.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    with_one = await webhook_statements_during(1.0)

    assert without == []
    assert added.status_code == 201, added.text
    assert with_one  # this worker changed an endpoint: it reads again at once
