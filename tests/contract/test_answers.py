"""Every JSON answer, and every WebSocket frame, is exactly the contract type declared for
it: against a real server, each body read back through its Struct comes out unchanged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect

from realtime.contract import (
    BulkSent,
    ConversionReport,
    DashboardServerFrame,
    Erased,
    ErrorAnswer,
    ErrorFrame,
    EventAccepted,
    FeedItem,
    FeedPage,
    Health,
    Journey,
    PollAnswer,
    SentTeaser,
    SessionOpened,
    SessionServerFrame,
    SignedIn,
    Stats,
    TeaserState,
)
from realtime.delivery import TeaserFrame
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    InProcessServer,
    event_time,
    json_of,
    new_session_id,
)


def assert_exactly(body: Any, kind: Any) -> None:
    """`body` is exactly a `kind`. convert refuses a missing required field or a wrong
    type; to_builtins writes exactly the fields the Struct declares, so a field the server
    added, or left out where the Struct has a default, makes the two differ."""
    assert msgspec.to_builtins(msgspec.convert(body, kind)) == body


def assert_frame_exactly(raw: str | bytes, kind: Any) -> Any:
    """A frame decoded as `kind` and written again is the frame as it came."""
    frame = msgspec.json.decode(raw, type=kind)
    assert msgspec.to_builtins(frame) == json.loads(raw)
    return frame


def answer(response: httpx.Response, status: int, kind: Any) -> Any:
    assert response.status_code == status, response.text
    body = json_of(response)
    assert_exactly(body, kind)
    return body


async def send(client: httpx.AsyncClient, session: str, message: str = "Hi") -> dict[str, Any]:
    sent = {"sessionId": session, "message": message}
    response = await client.put("/api/teaser-messages", json=sent, headers=DEMO_HEADERS)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def poll(client: httpx.AsyncClient, session: str, **extra: Any) -> httpx.Response:
    asked = {"siteId": DEMO_SITE, "sessionId": session, **extra}
    return await client.post("/api/teaser-messages", json=asked)


async def report(client: httpx.AsyncClient, session: str, **fields: Any) -> httpx.Response:
    event = {"siteId": DEMO_SITE, "sessionId": session, "type": "page_view", "path": "/chairs"}
    return await client.post(
        "/api/events", json={**event, "ts": event_time(time.time_ns() // 1000), **fields}
    )


async def make_activity(client: httpx.AsyncClient) -> str:
    """A visitor who views a page, gets a teaser by poll, sees it, clicks it and buys:
    every kind of feed item and journey step. Returns the session."""
    session = new_session_id()
    assert (await report(client, session, utm={"utm_source": "newsletter"})).status_code == 202
    teaser = await send(client, session)
    assert (await poll(client, session)).status_code == 200
    for kind in ("teaser_shown", "teaser_click", "conversion"):
        shown = await report(client, session, type=kind, teaserId=teaser["id"])
        assert shown.status_code == 202, shown.text
    return session


@pytest.fixture
async def activity(client: httpx.AsyncClient) -> str:
    return await make_activity(client)


# ---- sending and reading a teaser ----------------------------------------------------


async def test_a_single_send_answers_exactly_a_sent_teaser(client: httpx.AsyncClient) -> None:
    plain = await client.put(
        "/api/teaser-messages",
        json={"sessionId": new_session_id(), "message": "Hi"},
        headers=DEMO_HEADERS,
    )
    on_a_page = await client.put(
        "/api/teaser-messages",
        json={"sessionId": new_session_id(), "message": "Hi", "onlyOnPath": "/cart"},
        headers=DEMO_HEADERS,
    )

    answer(plain, 201, SentTeaser)
    assert (answer(on_a_page, 201, SentTeaser))["onlyOnPath"] == "/cart"


async def test_a_bulk_send_answers_exactly_bulk_sent(client: httpx.AsyncClient) -> None:
    messages = [{"sessionId": new_session_id(), "message": f"m{i}"} for i in range(3)]
    response = await client.put("/api/teaser-messages", json=messages, headers=DEMO_HEADERS)

    assert len((answer(response, 201, BulkSent))["messages"]) == 3


async def test_a_teasers_state_is_exactly_teaser_state_before_and_after_delivery(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    sent = await send(client, session)
    url = f"/api/teaser-messages/{sent['id']}"

    before = answer(await client.get(url, headers=DEMO_HEADERS), 200, TeaserState)
    await poll(client, session)
    after = answer(await client.get(url, headers=DEMO_HEADERS), 200, TeaserState)

    assert (before["status"], before["deliveredVia"]) == ("pending", None)
    assert (after["status"], after["deliveredVia"]) == ("delivered", "poll")


async def test_a_poll_answers_exactly_a_poll_answer_with_and_without_recovery(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    await send(client, session)

    first = answer(await poll(client, session), 200, PollAnswer)
    again = answer(await poll(client, session, since=0), 200, PollAnswer)

    assert len(first["messages"]) == 1 and "recovered" not in first
    assert "recovered" in again and len(again["messages"]) == 1


async def test_a_dashboard_send_answers_exactly_a_teaser_state(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/dashboard/teasers",
        json={"sessionId": new_session_id(), "message": "Hi"},
        headers=DEMO_HEADERS,
    )
    assert (answer(response, 201, TeaserState))["priority"] == "manual"


# ---- the widget, privacy and operators -----------------------------------------------


async def test_opening_a_session_answers_exactly_session_opened(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/sessions", json={"siteId": DEMO_SITE})
    answer(response, 201, SessionOpened)


async def test_an_event_answers_exactly_event_accepted(client: httpx.AsyncClient) -> None:
    answer(await report(client, new_session_id()), 202, EventAccepted)


async def test_an_erase_answers_exactly_erased(client: httpx.AsyncClient) -> None:
    session = new_session_id()
    await report(client, session, customerEmail="ann@shop.example")
    response = await client.post(
        "/api/privacy/erase", json={"email": "ann@shop.example"}, headers=DEMO_HEADERS
    )
    assert (answer(response, 200, Erased))["sessions"] == 1


async def test_a_key_holders_me_is_exactly_signed_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/operator/me", headers=DEMO_HEADERS)
    signed_in = answer(response, 200, SignedIn)
    assert (signed_in["operator"], signed_in["csrfToken"]) == (None, None)


async def test_health_is_exactly_health(client: httpx.AsyncClient) -> None:
    answer(await client.get("/healthz"), 200, Health)


# ---- what the dashboard reads ----------------------------------------------------------


async def test_the_stats_are_exactly_stats(client: httpx.AsyncClient, activity: str) -> None:
    stats = answer(await client.get("/api/stats", headers=DEMO_HEADERS), 200, Stats)
    assert stats["totalEvents"] >= 4


async def test_a_feed_page_with_every_kind_of_item_is_exactly_a_feed_page(
    client: httpx.AsyncClient, activity: str
) -> None:
    response = await client.get("/api/events", headers=DEMO_HEADERS)
    page = answer(response, 200, FeedPage)
    assert {item["kind"] for item in page["events"]} == {"event", "teaser_sent", "teaser_delivered"}


async def test_the_json_export_is_exactly_a_list_of_feed_items(
    client: httpx.AsyncClient, activity: str
) -> None:
    response = await client.get("/api/events/export?format=json", headers=DEMO_HEADERS)
    rows = answer(response, 200, list[FeedItem])
    assert {row["kind"] for row in rows} == {"event", "teaser_sent", "teaser_delivered"}


async def test_a_journey_with_every_kind_of_step_is_exactly_a_journey(
    client: httpx.AsyncClient, activity: str
) -> None:
    url = f"/api/dashboard/sessions/{activity}"
    journey = answer(await client.get(url, headers=DEMO_HEADERS), 200, Journey)
    kinds = {step["kind"] for step in journey["timeline"]}
    assert kinds == {"event", "teaser_sent", "teaser_delivered"}


async def test_a_conversion_report_with_groups_is_exactly_a_conversion_report(
    client: httpx.AsyncClient, activity: str
) -> None:
    response = await client.get("/api/dashboard/conversions", headers=DEMO_HEADERS)
    report = answer(response, 200, ConversionReport)
    assert report["totals"]["shown"] >= 1
    assert all(report[group] for group in ("byTrigger", "byTemplate", "bySource"))


# ---- failures ------------------------------------------------------------------------

KEYLESS = {"X-Site-ID": DEMO_SITE, "X-API-Key": "not-the-key"}
FAILURES = [
    pytest.param("PUT", "/api/teaser-messages", {"sessionId": "s", "message": "Hi"}, {}, 401,
                 id="401-send-without-key"),
    pytest.param("GET", "/api/stats", None, KEYLESS, 401, id="401-stats-with-a-wrong-key"),
    pytest.param("GET", "/api/operator/me", None, {}, 401, id="401-me-signed-out"),
    pytest.param("POST", "/api/events", {"siteId": "no_such_site", "sessionId": "s",
                 "type": "page_view"}, {}, 401, id="401-event-of-an-unknown-site"),
    pytest.param("GET", "/api/teaser-messages/tm_nope", None, DEMO_HEADERS, 404,
                 id="404-unknown-teaser"),
    pytest.param("GET", "/api/dashboard/teasers/tm_nope", None, DEMO_HEADERS, 404,
                 id="404-unknown-dashboard-teaser"),
    pytest.param("GET", "/api/dashboard/sessions/sess_nobody", None, DEMO_HEADERS, 404,
                 id="404-unknown-session"),
    pytest.param("GET", "/api/no-such-route", None, {}, 404, id="404-unmatched-route"),
    pytest.param("PUT", "/api/teaser-messages", {"sessionId": "s", "message": " "}, DEMO_HEADERS,
                 422, id="422-blank-message"),
    pytest.param("PUT", "/api/teaser-messages", [], DEMO_HEADERS, 422, id="422-empty-bulk"),
    pytest.param("POST", "/api/teaser-messages", {"siteId": DEMO_SITE, "sessionId": "s",
                 "since": -1}, {}, 422, id="422-negative-since"),
    pytest.param("POST", "/api/events", {"siteId": DEMO_SITE, "sessionId": "s",
                 "type": "dance"}, {}, 422, id="422-unknown-event-type"),
    pytest.param("POST", "/api/privacy/erase", {"email": 7}, DEMO_HEADERS, 422,
                 id="422-erase-of-a-number"),
    pytest.param("GET", "/api/events?limit=0", None, DEMO_HEADERS, 422, id="422-feed-limit-0"),
    pytest.param("POST", "/api/dashboard/teasers", {"sessionId": "s"}, DEMO_HEADERS, 422,
                 id="422-dashboard-send-without-message"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), FAILURES)
async def test_every_failure_is_exactly_an_error_answer(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
) -> None:
    response = await client.request(method, path, json=body, headers=headers)
    answer(response, status, ErrorAnswer)


async def test_a_body_that_is_not_json_is_exactly_an_error_answer(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/api/teaser-messages", content=b"{", headers=DEMO_HEADERS)
    answer(response, 400, ErrorAnswer)


# ---- the sockets ---------------------------------------------------------------------


async def test_the_session_socket_sends_a_teaser_frame_exactly_as_declared(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?siteId={DEMO_SITE}&sessionId={session}"
    async with connect(url) as socket:
        sent = await send(client, session, "🎉 20% off chairs")
        raw = await asyncio.wait_for(socket.recv(), 2)

    frame = assert_frame_exactly(raw, SessionServerFrame)
    assert isinstance(frame, TeaserFrame) and frame.id == sent["id"]


@pytest.fixture
async def dashboard(server: InProcessServer) -> AsyncIterator[ClientConnection]:
    url = f"{server.ws_url}/api/dashboard/ws"
    async with connect(url, additional_headers=DEMO_HEADERS) as socket:
        yield socket


async def frames_until(
    socket: ClientConnection, wanted: set[str], timeout: float = 3.0
) -> list[str | bytes]:
    """Every raw frame until each wanted type has come at least once; the last is the
    first of the type that came last."""
    raws: list[str | bytes] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen:
        raw = await asyncio.wait_for(socket.recv(), max(0.01, deadline - time.monotonic()))
        raws.append(raw)
        seen.add(json.loads(raw)["type"])
    return raws


async def test_the_dashboard_socket_sends_hello_stats_feed_and_teasers_exactly_as_declared(
    client: httpx.AsyncClient, dashboard: ClientConnection
) -> None:
    first = await frames_until(dashboard, {"hello", "stats"})
    await make_activity(client)
    later = await frames_until(dashboard, {"feed", "teasers"})

    for raw in [*first, *later]:
        assert_frame_exactly(raw, DashboardServerFrame)


async def test_a_refused_view_frame_is_answered_with_exactly_an_error_frame(
    dashboard: ClientConnection,
) -> None:
    await frames_until(dashboard, {"hello"})
    await dashboard.send(json.dumps({"type": "view", "filter": "everything"}))
    error = (await frames_until(dashboard, {"error"}))[-1]  # the first error frame

    frame = assert_frame_exactly(error, DashboardServerFrame)
    assert isinstance(frame, ErrorFrame) and frame.error.code == "invalid_field"
