"""POST /api/events end to end: stored with its score, and an automatic teaser reaching
the visitor's socket, once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect

from realtime.platform.tables import visitor_sessions, webhook_events_internal
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, InProcessServer, event_time, json_of, new_session_id

SITE = "woodstock_outlet"
SEED_UTM = {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "chairs_sale"}


def event(session: str, **fields: Any) -> dict[str, Any]:
    return {
        "sessionId": session,
        "siteId": SITE,
        "type": "page_view",
        "path": "/",
        "ts": fields.pop("ts", event_time(id(fields))),
        **fields,
    }


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await client.post("/api/events", content=orjson.dumps(body), headers=headers)


async def stored_events(server: InProcessServer) -> list[Any]:
    assert server.runtime is not None
    async with server.runtime.engine.connect() as connection:
        return list((await connection.execute(select(webhook_events_internal))).all())


async def test_a_qualifying_visit_sends_one_automatic_teaser_to_the_visitors_socket(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}&path=/chairs"
    async with connect(url) as socket:
        first = await post(client, event(session, path="/chairs", utm=SEED_UTM, ts=event_time(1)))
        frame = json.loads(await asyncio.wait_for(socket.recv(), 2))
        await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
        later = [
            await post(client, event(session, path="/chairs/office", ts=event_time(i)))
            for i in range(2, 5)
        ]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(socket.recv(), 0.5)

    assert (first.status_code, json_of(first)) == (202, {"score": 75, "triggered": True})
    assert [json_of(r)["triggered"] for r in later] == [False, False, False]
    assert frame["priority"] == "auto"
    assert frame["message"].startswith("📱 Thanks for coming from Facebook!")
    rows = await stored_events(server)
    assert [row.ai_triggered for row in rows] == [True, False, False, False]
    trigger = rows[0].explanation["trigger"]
    assert trigger["template"] == "social_proof" and trigger["teaserId"] == frame["id"]
    assert {r["rule"] for r in rows[0].explanation["score"]["rules"]} == {
        "high_value_page",
        "utm_campaign",
        "facebook_traffic",
        "cpc_traffic",
    }
    assert rows[1].explanation["trigger"]["blockedBy"] == "cooldown"


async def test_a_low_interest_visit_is_recorded_without_a_teaser(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    response = await post(client, event(new_session_id(), path="/about"))
    assert (response.status_code, json_of(response)) == (202, {"score": 0, "triggered": False})
    [row] = await stored_events(server)
    assert (row.type, row.score, row.ai_triggered) == ("page_view", 0, False)
    assert row.payload["path"] == "/about"


async def test_a_pending_manual_teaser_is_never_replaced_by_an_automatic_one(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": "from the operator"},
    )

    response = await post(client, event(session, path="/cart"))

    assert json_of(response)["triggered"] is False
    [row] = await stored_events(server)
    assert row.explanation["trigger"]["blockedBy"] == "manual_teaser_pending"


async def test_a_leave_beacon_sent_as_plain_text_is_accepted(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    body = event(new_session_id(), type="page_leave", secondsOnPage=75)
    response = await client.post(
        "/api/events",
        content=json.dumps(body),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert (response.status_code, json_of(response)["score"]) == (202, 25)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown type", {"type": "purchase"}, "type"),
    ("path without slash", {"path": "chairs"}, "path"),
    ("unknown utm key", {"utm": {"utm_evil": "x"}}, "utm.utm_evil"),
    ("utm value too long", {"utm": {"utm_source": "x" * 201}}, "utm.utm_source"),
    ("not an email", {"customerEmail": "nobody"}, "customerEmail"),
    ("negative seconds", {"secondsOnPage": -1}, "secondsOnPage"),
    ("seconds as text", {"secondsOnPage": "30"}, "secondsOnPage"),
    ("an over-long time zone", {"timeZone": "Z" * 65}, "timeZone"),
    ("a huge title", {"title": "t" * 301}, "title"),
    ("NUL in a customer id", {"customerId": "a\u0000b"}, "customerId"),
    ("bad session id", {"sessionId": "no spaces please"}, "sessionId"),
]  # fmt: skip


@pytest.mark.parametrize("change,field", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
async def test_a_bad_event_is_422_naming_the_field_and_stores_nothing(
    server: InProcessServer, client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await post(client, {**event(new_session_id()), **change})
    assert response.status_code == 422
    assert json_of(response)["error"]["message"].startswith(field)
    assert await stored_events(server) == []


async def test_sql_looking_utm_values_are_stored_as_plain_text(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    value = "x'); DROP TABLE teaser_messages; --"
    response = await post(client, event(new_session_id(), utm={"utm_campaign": value}))
    [row] = await stored_events(server)
    assert response.status_code == 202 and row.payload["utm"]["utm_campaign"] == value


async def test_events_from_a_page_the_site_does_not_allow_are_403(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    response = await post(client, event(new_session_id()), Origin="https://evil.example")
    unknown = await post(client, {**event(new_session_id()), "siteId": "nobody"})
    assert json_of(response)["error"]["code"] == "origin_not_allowed"
    assert json_of(unknown)["error"]["code"] == "unknown_site"
    assert await stored_events(server) == []


async def test_a_session_flooding_events_gets_429_with_retry_after(
    start_server: ServerFactory,
) -> None:
    server = await start_server(events_per_minute=60)
    session = new_session_id()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answers = [await post(client, event(session, ts=event_time(i))) for i in range(32)]
        other = await post(client, event(new_session_id()))

    statuses = [a.status_code for a in answers]
    assert statuses[:30] == [202] * 30
    assert statuses[30:] == [429, 429]
    assert json_of(answers[-1])["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert other.status_code == 202  # one session's flood does not limit another
    assert len(await stored_events(server)) == 31


async def test_a_teaser_bound_to_a_page_is_only_delivered_there(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    sent = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": "chairs only", "onlyOnPath": "/chairs*"},
    )

    async def poll(path: str | None) -> list[str]:
        body = {"sessionId": session, "siteId": SITE} | ({"path": path} if path else {})
        response = await client.post("/api/teaser-messages", json=body)
        return [m["message"] for m in json_of(response)["messages"]]

    assert json_of(sent)["onlyOnPath"] == "/chairs*"
    assert await poll(None) == []
    assert await poll("/about") == []
    assert await poll("/chairs/office") == ["chairs only"]


async def test_events_are_counted_in_metrics(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    await post(client, event(new_session_id(), path="/cart"))
    metrics = (await client.get("/metrics")).text
    assert "teaser_events_total 1" in metrics
    assert "teaser_auto_triggers_total 1" in metrics


async def test_a_replayed_event_is_stored_but_does_not_raise_the_score(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    body = event(session, path="/chairs", ts="2026-11-25T12:00:00Z")
    scores = [json_of(await post(client, body))["score"] for _ in range(3)]
    rows = await stored_events(server)
    assert scores == [30, 30, 30]
    assert [row.explanation["duplicate"] for row in rows] == [False, True, True]


async def test_concurrent_events_of_one_session_are_all_counted(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    await asyncio.gather(
        *(post(client, event(session, path=f"/p{i}", ts=event_time(i))) for i in range(10))
    )
    assert server.runtime is not None
    async with server.runtime.engine.connect() as connection:
        count = (
            await connection.execute(select(func.count()).select_from(webhook_events_internal))
        ).scalar_one()
    final = await post(client, event(session, path="/p10", ts=event_time(10)))
    assert count == 10 and json_of(final)["score"] == 0
    async with server.runtime.engine.connect() as connection:
        state = (await connection.execute(select(visitor_sessions.c.state))).scalar_one()
    assert state["page_views"] == 11
