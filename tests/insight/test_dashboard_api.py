"""The dashboard's API and live socket: sign-in, signed sessions and CSRF; what an
operator reads (stats, feed, filters, pages, exports, journeys, conversions), only ever
about their own site; sending a custom teaser; and live rows across workers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from api.operator_auth import SESSION_TTL_MS, SessionSigner
from realtime.accounts.operators import OperatorRegistry
from realtime.platform.config import Settings
from realtime.platform.database import create_engine
from realtime.platform.errors import ConfigError
from realtime.runtime import Runtime
from tests.support import (
    DEMO_HEADERS,
    InProcessServer,
    ServerProcess,
    event_time,
    json_of,
    new_session_id,
)

SITE = "woodstock_outlet"
OTHER = "other_shop"
SEED_UTM = {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "chairs_sale"}


def runtime(server: InProcessServer) -> Runtime:
    assert server.runtime is not None
    return server.runtime


async def sign_in(server: InProcessServer, site: str = SITE) -> httpx.AsyncClient:
    """A client holding an operator's session cookie, sending its CSRF token."""
    email = f"op-{new_session_id()[-9:]}@{site.replace('_', '-')}.example"
    _, password = await runtime(server).operators.create(site, email)
    client = httpx.AsyncClient(base_url=server.base_url, timeout=10)
    answer = await client.post(
        "/api/operator/login", json={"siteId": site, "email": email, "password": password}
    )
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrfToken"]
    return client


@pytest.fixture
async def operator(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in(server)
    yield client
    await client.aclose()


async def post_event(
    client: httpx.AsyncClient, session: str, site: str = SITE, **fields: Any
) -> dict[str, Any]:
    body = {
        "sessionId": session,
        "siteId": site,
        "type": "page_view",
        "path": "/",
        "ts": event_time(time.perf_counter_ns()),
        **fields,
    }
    answer = await client.post("/api/events", content=orjson.dumps(body))
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def feed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/api/events", params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["events"]
    return items


async def dashboard_socket(
    server: InProcessServer | ServerProcess, client: httpx.AsyncClient, query: str = ""
) -> ClientConnection:
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    headers = {"Cookie": cookies, "Origin": server.base_url}
    return await connect(f"{server.ws_url}/api/dashboard/ws{query}", additional_headers=headers)


async def frame_of(socket: ClientConnection, kind: str, timeout: float = 1.0) -> dict[str, Any]:
    """The next frame of one type, skipping others (stats arrive all the time)."""
    deadline = time.monotonic() + timeout
    while True:
        frame: dict[str, Any] = json.loads(
            await asyncio.wait_for(socket.recv(), max(0.01, deadline - time.monotonic()))
        )
        if frame["type"] == kind:
            return frame


# ---- access --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/stats"),
        ("GET", "/api/events"),
        ("GET", "/api/events/export"),
        ("GET", "/api/dashboard/conversions"),
        ("GET", "/api/dashboard/sessions/sess_1"),
        ("GET", "/api/dashboard/teasers/tm_x"),
        ("POST", "/api/dashboard/teasers"),
        ("GET", "/api/operator/me"),
    ],
)
async def test_every_dashboard_api_answers_401_to_neither_a_session_nor_a_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    answer = await client.request(method, path, json={} if method == "POST" else None)
    assert answer.status_code == 401
    assert json_of(answer)["error"]["code"] == "not_signed_in"


async def test_signing_in_sets_a_signed_httponly_samesite_session_cookie(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    _, password = await runtime(server).operators.create(SITE, "Ann@Shop.example")
    answer = await client.post(
        "/api/operator/login",
        json={"siteId": SITE, "email": " ann@shop.example", "password": password},
    )
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}

    assert answer.status_code == 200
    assert json_of(answer)["operator"]["email"] == "ann@shop.example"
    assert "httponly" in cookies["teaser_session"] and "samesite=lax" in cookies["teaser_session"]
    assert "httponly" not in cookies["teaser_csrf"]  # the page's script echoes it
    assert json_of(await client.get("/api/operator/me"))["siteId"] == SITE


@pytest.mark.parametrize("email", ["ann@shop.example", "nobody@shop.example"])
async def test_a_wrong_password_and_an_unknown_operator_are_refused_alike(
    server: InProcessServer, client: httpx.AsyncClient, email: str
) -> None:
    await runtime(server).operators.create(SITE, "ann@shop.example")
    answer = await client.post(
        "/api/operator/login", json={"siteId": SITE, "email": email, "password": "guess-guess"}
    )
    assert answer.status_code == 401
    assert json_of(answer)["error"]["code"] == "invalid_login"
    assert "teaser_session" not in answer.headers.get("set-cookie", "")


async def test_a_tampered_or_expired_session_cookie_is_not_a_session(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    cookie = operator.cookies["teaser_session"]
    operator_id = int(cookie.split(".")[0])
    signer = SessionSigner(runtime(server).secret)
    expired, _ = signer.issue(operator_id, runtime(server).store.clock() - SESSION_TTL_MS - 1)
    someone_else = f"{operator_id + 1}.{cookie.split('.', 1)[1]}"

    for forged in (cookie[:-2] + "xx", someone_else, expired):
        operator.cookies.set("teaser_session", forged)
        assert (await operator.get("/api/stats")).status_code == 401


async def test_a_password_reset_signs_older_sessions_out(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    me = json_of(await operator.get("/api/operator/me"))["operator"]
    await asyncio.sleep(0.002)
    await runtime(server).operators.reset_password(SITE, me["email"])
    assert (await operator.get("/api/stats")).status_code == 401


async def test_a_session_request_that_changes_state_needs_the_csrf_token_and_own_origin(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    send = {"sessionId": new_session_id(), "message": "Hello"}
    token = operator.headers.pop("X-CSRF-Token")

    missing = await operator.post("/api/dashboard/teasers", json=send)
    wrong = await operator.post("/api/dashboard/teasers", json=send, headers={"X-CSRF-Token": "x"})
    foreign = await operator.post(
        "/api/dashboard/teasers",
        json=send,
        headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
    )
    right = await operator.post(
        "/api/dashboard/teasers",
        json=send,
        headers={"X-CSRF-Token": token, "Origin": server.base_url},
    )

    assert [r.status_code for r in (missing, wrong, foreign, right)] == [403, 403, 403, 201]
    assert json_of(missing)["error"]["code"] == "csrf_failed"
    assert json_of(foreign)["error"]["code"] == "origin_not_allowed"


async def test_a_script_uses_the_sites_api_key_and_needs_no_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    stats = await client.get("/api/stats", headers=DEMO_HEADERS)
    sent = await client.post(
        "/api/dashboard/teasers",
        headers=DEMO_HEADERS,
        json={"sessionId": new_session_id(), "message": "From a script"},
    )
    wrong_key = await client.get("/api/stats", headers={**DEMO_HEADERS, "X-API-Key": "nope"})

    assert (stats.status_code, sent.status_code, wrong_key.status_code) == (200, 201, 401)
    assert set(json_of(stats)) >= {
        "totalEvents",
        "aiTriggers",
        "activeSessions",
        "averageScore",
        "onlineNow",
    }


def test_production_refuses_to_start_without_a_long_secret_key() -> None:
    with pytest.raises(ConfigError, match="TEASER_SECRET_KEY"):
        Settings.from_environ({"TEASER_ENV": "production"})
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_environ({"TEASER_SECRET_KEY": "short"})
    assert Settings.from_environ({"TEASER_ENV": "production", "TEASER_SECRET_KEY": "k" * 32})


# ---- what an operator reads ----------------------------------------------------------


async def test_stats_count_events_ai_triggers_sessions_score_and_who_is_online(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    keen, idle = new_session_id(), new_session_id()
    scores = [
        (await post_event(operator, keen, path="/chairs", utm=SEED_UTM))["score"],
        (await post_event(operator, idle, path="/about"))["score"],
    ]
    await operator.post("/api/teaser-messages", json={"sessionId": idle, "siteId": SITE})
    await asyncio.sleep(0.5)  # the poll's presence mark is written every 0.2 s in tests

    stats = json_of(await operator.get("/api/stats"))
    assert stats["totalEvents"] == 2 and stats["aiTriggers"] == 1
    assert stats["activeSessions"] == 2 and stats["onlineNow"] == 1
    assert stats["averageScore"] == sum(scores) / 2
    assert stats["messages"] == {
        "sent": 1,
        "delivered": 0,
        "deliveredWebsocket": 0,
        "deliveredPoll": 0,
        "pending": 1,
        "expired": 0,
    }


async def test_a_visitor_with_an_open_socket_counts_as_online(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"):
        await asyncio.sleep(0.5)  # the socket's presence mark is written every 0.2 s in tests
        online = json_of(await operator.get("/api/stats"))["onlineNow"]
    assert online == 1


async def test_stats_count_messages_delivered_pending_and_expired(
    operator: httpx.AsyncClient,
) -> None:
    polled, waiting, lapsing = new_session_id(), new_session_id(), new_session_id()
    for session, expires_in in ((polled, 60_000), (waiting, 60_000), (lapsing, 1000)):
        await operator.post(
            "/api/dashboard/teasers",
            json={"sessionId": session, "message": "Hi", "expiresIn": expires_in},
        )
    await operator.post("/api/teaser-messages", json={"sessionId": polled, "siteId": SITE})
    await asyncio.sleep(1.1)

    messages = json_of(await operator.get("/api/stats"))["messages"]
    assert (messages["delivered"], messages["deliveredPoll"]) == (1, 1)
    assert (messages["pending"], messages["expired"]) == (1, 1)


async def test_the_feed_is_every_event_send_and_delivery_newest_first(
    operator: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    await post_event(operator, session, path="/about")
    sent = json_of(
        await operator.post(
            "/api/dashboard/teasers", json={"sessionId": session, "message": "Hello"}
        )
    )
    await operator.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE})

    items = await feed(operator)
    assert [item["kind"] for item in items] == ["teaser_delivered", "teaser_sent", "event"]
    assert items[0]["id"] == items[1]["id"] == sent["id"]
    assert (items[0]["deliveredVia"], items[1]["status"], items[2]["path"]) == (
        "poll",
        "delivered",
        "/about",
    )
    assert items[2]["explanation"]["score"]["total"] == 0


async def test_the_filters_narrow_the_feed_to_ai_triggers_and_high_scores(
    operator: httpx.AsyncClient,
) -> None:
    for path, utm in (
        ("/chairs", SEED_UTM),
        ("/chairs", {}),
        ("/about", {}),
        ("/cart", {"utm_campaign": "x"}),
    ):
        await post_event(operator, new_session_id(), path=path, utm=utm)
    everything = await feed(operator, filter="all")
    ai, high = await feed(operator, filter="ai"), await feed(operator, filter="high_score")

    events = [i for i in everything if i["kind"] == "event"]
    assert [i["key"] for i in high] == [i["key"] for i in events if i["score"] >= 50]
    assert [i["key"] for i in ai] == [
        i["key"] for i in everything if i.get("aiTriggered") or i.get("priority") == "auto"
    ]
    assert 0 < len(high) < len(events) and any(i["kind"] == "teaser_sent" for i in ai)
    assert (await operator.get("/api/events", params={"filter": "best"})).status_code == 422


async def test_search_finds_sessions_customers_and_pages(operator: httpx.AsyncClient) -> None:
    alice, bob = new_session_id(), new_session_id()
    await post_event(operator, alice, path="/tables/oak", customerId="cust-4711")
    await post_event(operator, bob, path="/about", customerEmail="bob@example.com")

    def sessions(items: list[dict[str, Any]]) -> set[str]:
        return {item["sessionId"] for item in items}

    assert sessions(await feed(operator, q="OAK")) == {alice}
    assert sessions(await feed(operator, q="4711")) == {alice}
    assert sessions(await feed(operator, q="bob@")) == {bob}
    assert sessions(await feed(operator, q=bob[-9:])) == {bob}
    assert await feed(operator, q="100%_") == []  # LIKE wildcards are searched as text


async def test_feed_pages_follow_each_other_without_gaps_or_repeats(
    operator: httpx.AsyncClient,
) -> None:
    for index in range(12):
        session = new_session_id()
        await post_event(operator, session, path="/chairs" if index % 3 == 0 else "/about")
        if index % 4 == 0:
            await operator.post(
                "/api/dashboard/teasers", json={"sessionId": session, "message": "Hi"}
            )
    whole = await feed(operator)
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = json_of(
            await operator.get(
                "/api/events", params={"limit": 5, "before": cursor} if cursor else {"limit": 5}
            )
        )
        paged += page["events"]
        if not (cursor := page["next"]):
            break

    assert len(whole) == 12 + 3
    assert [item["key"] for item in paged] == [item["key"] for item in whole]
    assert (await operator.get("/api/events", params={"before": "soon"})).status_code == 422


async def test_since_and_period_limit_the_feed_and_the_cards(operator: httpx.AsyncClient) -> None:
    await post_event(operator, new_session_id())
    later = int(time.time() * 1000) + 60_000

    assert len(await feed(operator, period="1h")) == 1
    assert await feed(operator, since=later) == []
    assert (
        json_of(await operator.get("/api/stats", params={"since": "2999-01-01T00:00:00Z"}))[
            "totalEvents"
        ]
        == 0
    )
    assert (await operator.get("/api/stats", params={"period": "1y"})).status_code == 422


async def test_export_json_has_the_apis_rows_and_csv_the_same_rows(
    operator: httpx.AsyncClient,
) -> None:
    for path in ("/chairs", "/about", "/cart"):
        await post_event(
            operator,
            new_session_id(),
            path=path,
            utm={"utm_campaign": "x"},
            title='=HYPERLINK("x")',
        )
    api_rows = await feed(operator, filter="high_score")

    exported = await operator.get(
        "/api/events/export", params={"format": "json", "filter": "high_score"}
    )
    as_csv = await operator.get(
        "/api/events/export", params={"format": "csv", "filter": "high_score"}
    )
    csv_rows = list(csv.DictReader(io.StringIO(as_csv.text)))

    assert (
        'attachment; filename="teaser-woodstock_outlet-high_score-'
        in exported.headers["content-disposition"]
    )
    assert exported.json() == api_rows and api_rows
    assert [row["id"] for row in csv_rows] == [str(row["id"]) for row in api_rows]
    assert csv_rows[0]["title"] == '\'=HYPERLINK("x")'  # a spreadsheet shows it, never runs it
    assert orjson.loads(csv_rows[0]["explanation"]) == api_rows[0]["explanation"]


async def test_the_export_of_nothing_is_an_empty_json_array(operator: httpx.AsyncClient) -> None:
    answer = await operator.get("/api/events/export")
    assert answer.json() == []


async def test_a_session_journey_tells_pages_time_score_changes_and_teaser_fates(
    operator: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    await post_event(operator, session, path="/about", utm=SEED_UTM)
    await post_event(operator, session, path="/about", type="time_on_page", secondsOnPage=42)
    await post_event(operator, session, path="/chairs")
    teaser = json_of(
        await operator.post("/api/dashboard/teasers", json={"sessionId": session, "message": "Hi"})
    )
    await operator.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE})
    for kind in ("teaser_shown", "teaser_click", "conversion"):
        await post_event(operator, session, path="/chairs", type=kind, teaserId=teaser["id"])

    journey = json_of(await operator.get(f"/api/dashboard/sessions/{session}"))
    views = [e for e in journey["timeline"] if e.get("type") == "page_view"]
    sent = next(
        e for e in journey["timeline"] if e["kind"] == "teaser_sent" and e["id"] == teaser["id"]
    )

    assert [(v["path"], v["timeOnPage"]) for v in views] == [("/about", 42), ("/chairs", None)]
    assert views[1]["scoreChange"] == 30 and "high_value_page" in {
        r["rule"] for r in views[1]["rules"]
    }
    assert (sent["status"], sent["deliveredVia"]) == ("delivered", "poll")
    assert (sent["shown"], sent["clicked"], sent["converted"]) == (True, True, True)
    assert journey["converted"] and journey["utm"]["utm_source"] == "facebook"
    missing = await operator.get(f"/api/dashboard/sessions/{new_session_id()}")
    assert missing.status_code == 404


async def test_conversions_are_rated_by_trigger_type_template_and_source(
    operator: httpx.AsyncClient,
) -> None:
    keen, manual = new_session_id(), new_session_id()
    await post_event(operator, keen, path="/chairs", utm=SEED_UTM)
    trigger = next(i for i in await feed(operator, filter="ai") if i["kind"] == "event")
    auto_id = trigger["triggeredTeaserId"]
    manual_id = json_of(
        await operator.post("/api/dashboard/teasers", json={"sessionId": manual, "message": "Hi"})
    )["id"]
    for session, teaser_id, steps in (
        (keen, auto_id, ("teaser_shown", "teaser_click", "conversion")),
        (manual, manual_id, ("teaser_shown",)),
    ):
        for kind in steps:
            utm = SEED_UTM if session == keen else {}
            await post_event(
                operator, session, path="/chairs", type=kind, teaserId=teaser_id, utm=utm
            )
    await post_event(operator, manual, type="conversion")  # names no teaser: last one shown

    report = json_of(await operator.get("/api/dashboard/conversions", params={"period": "24h"}))
    by = {
        name: {row["key"]: row for row in report[name]}
        for name in ("byTrigger", "byTemplate", "bySource")
    }

    assert report["totals"] | {} == {
        "shown": 2,
        "clicked": 1,
        "converted": 2,
        "clickRate": 0.5,
        "conversionRate": 1.0,
    }
    assert (by["byTrigger"]["auto"]["clicked"], by["byTrigger"]["manual"]["clicked"]) == (1, 0)
    assert by["byTemplate"]["social_proof"]["converted"] == 1 and "(manual)" in by["byTemplate"]
    assert set(by["bySource"]) == {"facebook", "(direct)"}


# ---- sending -------------------------------------------------------------------------


async def test_send_custom_teaser_is_manual_and_refused_past_the_message_limit(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    session = new_session_id()
    limit = runtime(server).settings.max_message_length
    too_long = await operator.post(
        "/api/dashboard/teasers", json={"sessionId": session, "message": "x" * (limit + 1)}
    )
    sent = await operator.post(
        "/api/dashboard/teasers",
        json={"sessionId": session, "message": "🎉" * limit, "priority": "auto"},
    )
    status = await operator.get(f"/api/dashboard/teasers/{json_of(sent)['id']}")

    assert too_long.status_code == 422 and "message" in json_of(too_long)["error"]["message"]
    assert sent.status_code == 201 and json_of(sent)["priority"] == "manual"
    assert json_of(status)["status"] == "pending" and json_of(status)["deliveredVia"] is None


async def test_an_operator_sees_and_sends_only_within_their_own_site(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    _, other_key = await runtime(server).sites.create(OTHER)
    other_headers = {"X-API-Key": other_key, "X-Site-ID": OTHER}
    theirs = new_session_id()
    await post_event(operator, theirs, site=OTHER, path="/chairs", utm=SEED_UTM)
    their_teaser = json_of(
        await operator.post(
            "/api/dashboard/teasers",
            headers=other_headers,
            json={"sessionId": theirs, "message": "Theirs"},
        )
    )
    mine = json_of(
        await operator.post(
            "/api/dashboard/teasers", json={"sessionId": theirs, "siteId": OTHER, "message": "Mine"}
        )
    )

    assert {item["id"] for item in await feed(operator)} == {mine["id"]}
    assert json_of(await operator.get("/api/stats"))["totalEvents"] == 0
    assert (await operator.get("/api/events/export")).json() == await feed(operator)
    assert (await operator.get(f"/api/dashboard/sessions/{theirs}")).status_code == 200  # own send
    assert (await operator.get(f"/api/dashboard/teasers/{their_teaser['id']}")).status_code == 404
    assert mine["siteId"] == SITE  # a siteId in the body changes nothing
    pending = await operator.post(
        "/api/teaser-messages", json={"sessionId": theirs, "siteId": OTHER}
    )
    messages = [m["message"] for m in json_of(pending)["messages"]]
    assert "Theirs" in messages and "Mine" not in messages
    borrowed = await operator.get("/api/stats", headers={"X-Site-ID": OTHER})
    assert borrowed.status_code == 401  # a cookie never lends its authority to another site


# ---- the live socket -----------------------------------------------------------------


async def test_a_new_event_and_the_changed_cards_reach_the_dashboard_within_a_second(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    async with await dashboard_socket(server, operator) as socket:
        hello = await frame_of(socket, "hello")
        before = (await frame_of(socket, "stats"))["stats"]
        started = time.perf_counter()
        await post_event(operator, new_session_id(), path="/chairs", utm=SEED_UTM)
        pushed = await frame_of(socket, "feed")
        elapsed = time.perf_counter() - started
        after = (await frame_of(socket, "stats"))["stats"]

    assert hello["siteId"] == SITE and elapsed < 1.0
    assert {item["kind"] for item in pushed["items"]} <= {"event", "teaser_sent"}
    event = next(item for item in pushed["items"] if item["kind"] == "event")
    assert event == {i["key"]: i for i in await feed(operator)}[event["key"]]  # as the API has it
    assert after["totalEvents"] == before["totalEvents"] + 1


async def test_the_socket_pushes_only_rows_of_the_operators_view(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    async with await dashboard_socket(server, operator, "?filter=high_score") as socket:
        await frame_of(socket, "hello")
        await post_event(operator, new_session_id(), path="/about")
        await post_event(operator, new_session_id(), path="/chairs", utm=SEED_UTM)
        pushed = await frame_of(socket, "feed")
        await socket.send(json.dumps({"type": "view", "filter": "all", "q": "needle"}))
        await asyncio.sleep(0.1)
        await post_event(operator, "needle_" + new_session_id())
        searched = await frame_of(socket, "feed")

    assert [(i["path"], i["score"] >= 50) for i in pushed["items"]] == [("/chairs", True)]
    assert [i["sessionId"].startswith("needle_") for i in searched["items"]] == [True]


async def test_a_sent_teasers_delivery_reaches_the_dashboard_whatever_its_view(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with await dashboard_socket(server, operator, "?filter=high_score") as socket:
        await frame_of(socket, "hello")
        sent = json_of(
            await operator.post(
                "/api/dashboard/teasers", json={"sessionId": session, "message": "Hi"}
            )
        )
        visitor = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"
        async with connect(visitor) as widget:
            frame = json.loads(await widget.recv())
            await widget.send(json.dumps({"type": "ack", "id": frame["id"]}))
            fates: list[dict[str, Any]] = []
            while not any(f["kind"] == "teaser_delivered" for f in fates):
                fates += (await frame_of(socket, "teasers"))["items"]

    delivered = next(f for f in fates if f["kind"] == "teaser_delivered")
    assert (delivered["id"], delivered["via"]) == (sent["id"], "websocket")


@pytest.mark.parametrize(
    ("origin", "with_cookie", "status"),
    [("https://evil.example", True, 403), (None, False, 401)],
    ids=["foreign-origin", "no-session"],
)
async def test_the_dashboard_socket_refuses_a_foreign_page_and_a_stranger(
    server: InProcessServer,
    operator: httpx.AsyncClient,
    origin: str | None,
    with_cookie: bool,
    status: int,
) -> None:
    headers = {"Origin": origin} if origin else {}
    if with_cookie:
        headers["Cookie"] = f"teaser_session={operator.cookies['teaser_session']}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/api/dashboard/ws", additional_headers=headers):
            pass
    assert refused.value.response.status_code == status


async def test_a_dashboard_of_one_site_never_hears_another_sites_activity(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    await runtime(server).sites.create(OTHER)
    async with await dashboard_socket(server, operator) as socket:
        await frame_of(socket, "hello")
        await post_event(operator, new_session_id(), site=OTHER, path="/chairs", utm=SEED_UTM)
        with pytest.raises(TimeoutError):
            await frame_of(socket, "feed", timeout=0.8)


async def test_an_event_on_worker_a_reaches_a_dashboard_on_worker_b_within_a_second(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "TEASER_SECRET_KEY": "k" * 40}
    workers = (ServerProcess(env, tmp_path), ServerProcess(env, tmp_path))
    await asyncio.gather(*(asyncio.to_thread(worker.start) for worker in workers))
    engine = create_engine(postgres_url)
    try:
        _, password = await OperatorRegistry(engine).create(SITE, "ops@woodstock.example")
        async with httpx.AsyncClient(base_url=workers[0].base_url, timeout=10) as on_a:
            await on_a.post(
                "/api/operator/login",
                json={"siteId": SITE, "email": "ops@woodstock.example", "password": password},
            )
            async with await dashboard_socket(workers[1], on_a) as socket:
                await frame_of(socket, "hello")
                started = time.perf_counter()
                session = new_session_id()
                await post_event(on_a, session, path="/chairs")
                pushed = await frame_of(socket, "feed")
                elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
        await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in workers))

    assert pushed["items"][-1]["sessionId"] == session
    assert elapsed < 1.0
