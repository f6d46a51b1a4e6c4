"""Personal data: erased on request, purged after the retention period, kept out of logs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from realtime.accounts.privacy import DAY_MS
from realtime.platform.tables import teaser_messages, visitor_sessions, webhook_events_internal
from tests.support import (
    DEMO_HEADERS,
    ROOT,
    InProcessServer,
    ServerProcess,
    event_time,
    json_of,
    new_session_id,
)

SITE = "woodstock_outlet"
EMAIL = "test@woodstock.com"


async def visit(client: httpx.AsyncClient, session: str, **fields: Any) -> None:
    body = {
        "sessionId": session,
        "siteId": SITE,
        "type": "page_view",
        "path": "/chairs",
        "ts": event_time(hash(str(fields))),
        **fields,
    }
    response = await client.post("/api/events", content=orjson.dumps(body))
    assert response.status_code == 202, response.text


async def count(server: InProcessServer, table: Any, session: str) -> int:
    assert server.runtime is not None
    async with server.runtime.engine.connect() as connection:
        query = select(func.count()).select_from(table).where(table.c.session_id == session)
        return int((await connection.execute(query)).scalar_one())


async def test_erasing_a_person_removes_their_sessions_events_and_messages_only(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    theirs, mine = new_session_id(), new_session_id()
    await visit(client, theirs, customerEmail="Test@Woodstock.com")
    await visit(client, mine, customerEmail="someone@else.com")
    await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": theirs, "message": "hello you"},
    )

    response = await client.post("/api/privacy/erase", headers=DEMO_HEADERS, json={"email": EMAIL})

    body = json_of(response)
    assert response.status_code == 200 and body["sessions"] == 1
    assert body["deleted"]["webhook_events_internal"] == 1
    assert body["deleted"]["teaser_messages"] == 2  # the manual one and an automatic one
    for table in (webhook_events_internal, teaser_messages, visitor_sessions):
        assert await count(server, table, theirs) == 0
    assert await count(server, webhook_events_internal, mine) == 1


async def test_erasure_needs_the_sites_key_and_a_person(client: httpx.AsyncClient) -> None:
    anonymous = await client.post("/api/privacy/erase", json={"email": EMAIL})
    nobody = await client.post("/api/privacy/erase", headers=DEMO_HEADERS, json={})
    assert anonymous.status_code == 401
    assert nobody.status_code == 422


async def test_events_older_than_the_retention_period_are_purged(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    await visit(client, session)
    assert server.runtime is not None
    runtime = server.runtime
    async with runtime.engine.begin() as connection:
        old = runtime.store.clock() - 91 * DAY_MS
        await connection.execute(webhook_events_internal.update().values(created_at=old))
        await connection.execute(visitor_sessions.update().values(last_seen=old))

    assert await runtime.privacy.purge_older_than(90) == 1
    assert await count(server, visitor_sessions, session) == 0
    assert await runtime.privacy.purge_older_than(0) == 0


def test_the_cli_erases_a_person_on_every_site(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}"
    server = ServerProcess({"DATABASE_URL": url}, tmp_path)
    server.start()
    try:
        session = new_session_id()
        asyncio.run(_visit_over_http(server.base_url, session))
    finally:
        server.stop()
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "privacy", "erase", "--email", EMAIL],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "erased 1 session(s)" in result.stdout
    assert EMAIL not in server.log()  # nor did the server ever log it


async def _visit_over_http(base_url: str, session: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        await client.get(f"/demo?customer_email={EMAIL}&customer_id=12345")
        await visit(client, session, customerEmail=EMAIL, url=f"{base_url}/?customer_email={EMAIL}")
