"""Which sites have endpoints is read for all at once and kept a while; an endpoint this
worker adds counts at once, even when it is added while that read is under way (the read
began before the endpoint was committed): its first events are written and delivered, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.outbox import WebhookType
from tests.support import (
    HeldRead,
    fresh_database,
    json_of,
    make_settings,
    new_session_id,
    serving,
)
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_an_endpoint_added_during_a_read_counts_at_once(
    kind: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with fresh_database(kind, tmp_path) as url:
        settings = make_settings(
            database_url=url,
            webhook_allow_private=True,
            webhook_interval=0.05,
            site_cache_ttl=60.0,  # a stale answer kept would hide the endpoint for the test
        )
        async with (
            serving(settings) as live,
            httpx.AsyncClient(base_url=live.base_url, timeout=10) as http,
        ):
            assert live.runtime is not None
            runtime = live.runtime
            subscriptions = runtime.subscriptions
            _, key = await runtime.sites.create("adding")
            headers = {"X-API-Key": key, "X-Site-ID": "adding"}

            held = HeldRead(subscriptions.engine)
            subscriptions.engine = cast(AsyncEngine, held)
            subscriptions.forget()
            reading = asyncio.create_task(subscriptions.any())
            await asyncio.wait_for(held.answered.wait(), 5)  # read: no endpoint yet
            await runtime.webhooks.add("adding", receiver.url(f"adding-{kind}"))
            held.released.set()
            assert await reading is False  # what it read, before the endpoint
            subscriptions.engine = held.engine

            assert await subscriptions.wants("adding", WebhookType.DELIVERED)
            session = new_session_id()
            sent = await http.put(
                "/api/teaser-messages",
                json={"sessionId": session, "message": "hi"},
                headers=headers,
            )
            await http.post("/api/teaser-messages", json={"siteId": "adding", "sessionId": session})
            [arrived] = await receiver.wait_for(f"adding-{kind}", 1, timeout=5)
            assert arrived.event["type"] == "teaser.delivered"
            assert arrived.event["data"]["teaserId"] == json_of(sent)["id"]
