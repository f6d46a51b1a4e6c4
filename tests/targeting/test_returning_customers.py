"""A known customer is welcomed back only when they are back: their first visit, and a
second tab of it, get the known customer's teaser; a session that begins 30 minutes or
more after one of theirs gets "welcome back". Through POST /api/events on a real server,
on SQLite and PostgreSQL, and in the dry run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from sqlalchemy import select

from realtime.platform.clock import now_ms
from realtime.platform.tables import webhook_events_internal
from realtime.runtime import Runtime
from realtime.targeting import simulate
from realtime.targeting.rules import default_rules
from tests.support import (
    InProcessServer,
    ShiftedClock,
    event_time,
    fresh_database,
    make_settings,
    new_session_id,
    serving,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SITE = "woodstock_outlet"
MINUTE_MS = 60_000


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessServer]:
    async with fresh_database(request.param, tmp_path_factory.mktemp("returning")) as url:
        settings = make_settings(database_url=url)
        async with serving(settings, Runtime(settings, clock=ShiftedClock())) as live:
            yield live


def move_clock(server: InProcessServer, minutes: int) -> None:
    assert server.runtime is not None and isinstance(server.runtime.clock, ShiftedClock)
    server.runtime.clock.offset += minutes * MINUTE_MS


async def first_page_of_a_session(server: InProcessServer, customer: str) -> dict[str, Any]:
    """A new session's first page, as a signed-in customer: what its automatic teaser says."""
    session = new_session_id()
    body = {
        "sessionId": session,
        "siteId": SITE,
        "type": "page_view",
        "path": "/about",
        "customerId": customer,
        "ts": event_time(now_ms()),
    }
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.post("/api/events", content=orjson.dumps(body))
    assert answer.status_code == 202 and answer.json()["triggered"] is True, answer.text
    assert server.runtime is not None
    async with server.runtime.engine.connect() as connection:
        explanation = (
            await connection.execute(
                select(webhook_events_internal.c.explanation).where(
                    webhook_events_internal.c.session_id == session
                )
            )
        ).scalar_one()
    return {"session": session, **explanation["trigger"]}


def new_customer() -> str:
    return uuid.uuid4().hex[:8]


async def test_a_known_customers_first_visit_is_not_welcomed_back(
    server: InProcessServer,
) -> None:
    customer = new_customer()

    first = await first_page_of_a_session(server, customer)

    assert first["template"] == "customer_offer"
    assert first["message"] == f"🎉 Hello, customer #{customer}! Exclusive 30% off just for you!"
    assert "back" not in first["message"].lower()


async def test_a_second_tab_of_the_same_visit_is_not_welcomed_back(
    server: InProcessServer,
) -> None:
    customer = new_customer()
    await first_page_of_a_session(server, customer)
    move_clock(server, 5)

    second_tab = await first_page_of_a_session(server, customer)

    assert second_tab["template"] == "customer_offer"


async def test_a_customer_back_on_a_later_visit_is_welcomed_back(
    server: InProcessServer,
) -> None:
    customer, someone_else = new_customer(), new_customer()
    await first_page_of_a_session(server, customer)
    move_clock(server, 31)

    later = await first_page_of_a_session(server, customer)
    stranger = await first_page_of_a_session(server, someone_else)

    assert later["template"] == "welcome_back"
    assert later["message"] == (
        f"🎉 Welcome back, customer #{customer}! Exclusive 30% off just for you!"
    )
    assert stranger["template"] == "customer_offer"


async def test_the_dry_run_welcomes_back_only_the_customers_who_came_back(
    server: InProcessServer,
) -> None:
    customer = new_customer()
    first = await first_page_of_a_session(server, customer)
    move_clock(server, 45)
    later = await first_page_of_a_session(server, customer)
    assert server.runtime is not None

    replays = await simulate(server.runtime.engine, SITE, default_rules(), 0)

    templates = {r.session_id: [s["template"] for s in r.would_send] for r in replays}
    assert templates[first["session"]] == ["customer_offer"]
    assert templates[later["session"]] == ["welcome_back"]
