"""What the dashboard reads beyond one event's own payload, on SQLite and PostgreSQL: the
session's facts beside every feed row (API, export, live socket) and in search, what each
event changed in the score (stored at intake, and per journey step), and the conversion
funnel over time in zero-filled UTC buckets."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from realtime.platform.tables import webhook_events_internal
from realtime.runtime import Runtime
from tests.insight.test_dashboard_api import (
    SITE,
    dashboard_socket,
    feed,
    frame_of,
    post_event,
    sign_in,
)
from tests.support import (
    InProcessServer,
    ShiftedClock,
    event_time,
    fresh_database,
    json_of,
    make_settings,
    new_session_id,
)

# One server per database for the whole module; each test keeps to sessions of its own.
pytestmark = pytest.mark.asyncio(loop_scope="module")

HOUR_MS = 3_600_000
KINDS = ("event", "teaser_sent", "teaser_delivered")
FACEBOOK = {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "chairs_sale"}
HIGH_VALUE = {"rule": "high_value_page", "label": "High-value page", "points": 30}


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessServer]:
    async with fresh_database(request.param, tmp_path_factory.mktemp("facts")) as url:
        settings = make_settings(database_url=url)
        live = InProcessServer(settings, runtime=Runtime(settings, clock=ShiftedClock()))
        await live.start()
        try:
            yield live
        finally:
            await live.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def operator(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in(server)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def widget(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    """What a visitor's browser sends events with: no operator cookie."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


def clock_of(server: InProcessServer) -> ShiftedClock:
    assert server.runtime is not None and isinstance(server.runtime.clock, ShiftedClock)
    return server.runtime.clock


def of_session(items: list[dict[str, Any]], session: str, *kinds: str) -> list[dict[str, Any]]:
    """The session's rows, of the kinds named (else all): a known customer's first page
    also sends an automatic teaser."""
    return [i for i in items if i["sessionId"] == session and i["kind"] in (kinds or KINDS)]


async def facebook_customer(widget: httpx.AsyncClient) -> tuple[str, str]:
    """A session that told its UTM, customer and time zone once, then browsed on without."""
    session, customer = new_session_id(), f"cust-{new_session_id()[-8:]}"
    await post_event(
        widget,
        session,
        path="/about",
        utm=FACEBOOK,
        customerId=customer,
        customerEmail=f"{customer}@shop.example",
        timeZone="Europe/Berlin",
    )
    await post_event(widget, session, path="/tables")
    return session, customer


# ---- the session's facts on every row ------------------------------------------------


async def test_a_later_event_row_carries_the_sessions_utm_and_customer(
    operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session, customer = await facebook_customer(widget)

    later, first = of_session(await feed(operator, q=session), session, "event")

    assert (later["path"], later["utmSource"], later["customerId"]) == ("/tables", None, None)
    assert later["visitor"] == first["visitor"]
    assert later["visitor"] | {"firstSeen": None} == {
        "utmSource": "facebook",
        "utmMedium": "cpc",
        "utmCampaign": "chairs_sale",
        "customerId": customer,
        "customerEmail": f"{customer}@shop.example",
        "timeZone": "Europe/Berlin",
        "firstSeen": None,
    }
    assert later["visitor"]["firstSeen"] <= first["at"]


async def test_teaser_rows_carry_the_sessions_facts_and_a_stranger_has_none(
    operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session, customer = await facebook_customer(widget)
    stranger = new_session_id()  # never reported an event: no state row
    for target in (session, stranger):
        sent = await operator.post(
            "/api/dashboard/teasers", json={"sessionId": target, "message": "Hi"}
        )
        assert sent.status_code == 201, sent.text
    await widget.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE})

    rows = of_session(await feed(operator), session, "teaser_sent", "teaser_delivered")
    strangers = of_session(await feed(operator), stranger)

    assert {row["kind"] for row in rows} == {"teaser_sent", "teaser_delivered"}
    assert {(row["visitor"]["utmSource"], row["visitor"]["customerId"]) for row in rows} == {
        ("facebook", customer)
    }
    assert [row["kind"] for row in strangers] == ["teaser_sent"]
    assert set(strangers[0]["visitor"].values()) == {None}


async def test_search_by_the_sessions_customer_finds_rows_that_do_not_name_it(
    operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session, customer = await facebook_customer(widget)
    await operator.post("/api/dashboard/teasers", json={"sessionId": session, "message": "Hi"})

    by_id = await feed(operator, q=customer.upper())
    by_email = await feed(operator, q=f"{customer}@shop")
    everything = of_session(await feed(operator), session)

    assert [row["key"] for row in by_id] == [row["key"] for row in everything]
    assert [row["key"] for row in by_email] == [row["key"] for row in everything]
    assert ("/tables", None) in {(row.get("path"), row.get("customerId")) for row in by_id}
    assert sum(row["kind"] == "teaser_sent" for row in by_id) >= 1


async def test_the_export_has_the_sessions_facts_as_columns(
    operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session, customer = await facebook_customer(widget)

    as_json = await operator.get("/api/events/export", params={"q": session})
    as_csv = await operator.get("/api/events/export", params={"q": session, "format": "csv"})
    rows = [row for row in csv.DictReader(io.StringIO(as_csv.text)) if row["kind"] == "event"]

    assert [row["visitor"] for row in as_json.json()] == [
        row["visitor"] for row in await feed(operator, q=session)
    ]
    assert [(row["path"], row["utmSource"], row["visitorUtmSource"]) for row in rows] == [
        ("/tables", "", "facebook"),
        ("/about", "facebook", "facebook"),
    ]
    assert {(row["visitorCustomerId"], row["visitorTimeZone"]) for row in rows} == {
        (customer, "Europe/Berlin")
    }
    assert {row["visitorFirstSeen"] for row in rows} == {
        row["visitor"]["firstSeen"] for row in as_json.json()
    }


async def test_a_live_feed_row_carries_the_sessions_facts(
    server: InProcessServer, operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session, customer = await facebook_customer(widget)
    async with await dashboard_socket(server, operator, f"?q={session}") as socket:
        await frame_of(socket, "hello")
        await post_event(widget, session, path="/lamps")
        item: dict[str, Any] = {}
        while item.get("path") != "/lamps":
            frame = await frame_of(socket, "feed", timeout=3.0)
            item = next((i for i in frame["items"] if i["kind"] == "event"), item)

    assert (item["path"], item["customerId"]) == ("/lamps", None)
    assert (item["visitor"]["utmCampaign"], item["visitor"]["customerId"]) == (
        "chairs_sale",
        customer,
    )


# ---- what each event changed ---------------------------------------------------------


async def score_story(widget: httpx.AsyncClient, session: str) -> list[dict[str, Any]]:
    """Four events, and the second replayed; each one's stored score explanation."""
    steps: list[dict[str, Any]] = [
        {"path": "/about", "ts": event_time(1)},
        {"path": "/chairs", "ts": event_time(2)},
        {"path": "/chairs", "type": "time_on_page", "secondsOnPage": 31, "ts": event_time(3)},
        {"path": "/chairs", "type": "page_leave", "secondsOnPage": 75, "ts": event_time(4)},
        {"path": "/chairs", "ts": event_time(2)},  # the second, again
    ]
    for step in steps:
        await post_event(widget, session, **step)
    return steps


async def test_an_event_stores_the_score_before_it_and_the_rules_it_added(
    operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session = new_session_id()
    await score_story(widget, session)

    rows = list(reversed(of_session(await feed(operator, q=session), session, "event")))
    scores = [row["explanation"]["score"] for row in rows]

    assert [(s["previous"], s["total"]) for s in scores] == [
        (0, 0),
        (0, 30),
        (30, 45),
        (45, 55),
        (55, 55),
    ]
    assert [s["added"] for s in scores] == [
        [],
        [HIGH_VALUE | {"detail": "/chairs"}],
        [
            {
                "rule": "time_on_page",
                "label": "Time on a page",
                "points": 15,
                "detail": "30+ s on one page",
            }
        ],
        # The 60 s tier takes the 30 s tier's place: one change, worth the difference.
        [
            {
                "rule": "time_on_page",
                "label": "Time on a page",
                "points": 10,
                "detail": "60+ s on one page",
            }
        ],
        [],  # a duplicate adds nothing
    ]
    assert all(s["removed"] == [] for s in scores) and rows[-1]["explanation"]["duplicate"]
    assert [len(s["rules"]) for s in scores] == [0, 1, 2, 2, 2]  # cumulative, as before


async def test_each_journey_step_lists_what_it_added_also_for_rows_stored_before(
    server: InProcessServer, operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session = new_session_id()
    await score_story(widget, session)
    journey_url = f"/api/dashboard/sessions/{session}"

    def added(journey: dict[str, Any]) -> list[list[tuple[str, int]]]:
        return [
            [(rule["rule"], rule["points"]) for rule in step["added"]]
            for step in journey["timeline"]
            if step["kind"] == "event"
        ]

    stored = json_of(await operator.get(journey_url))
    await forget_score_changes(server, session)
    diffed = json_of(await operator.get(journey_url))

    expected = [[], [("high_value_page", 30)], [("time_on_page", 15)], [("time_on_page", 10)], []]
    assert added(stored) == added(diffed) == expected
    assert [s["rules"] for s in stored["timeline"]] == [s["rules"] for s in diffed["timeline"]]


async def forget_score_changes(server: InProcessServer, session: str) -> None:
    """Make the session's rows as intake stored them before it explained changes."""
    assert server.runtime is not None
    table = webhook_events_internal
    async with server.runtime.engine.begin() as connection:
        rows = await connection.execute(
            select(table.c.id, table.c.explanation).where(table.c.session_id == session)
        )
        for row_id, explanation in rows.all():
            score = explanation["score"]
            old = explanation | {"score": {"total": score["total"], "rules": score["rules"]}}
            await connection.execute(
                update(table).where(table.c.id == row_id).values(explanation=old)
            )


# ---- the funnel over time ------------------------------------------------------------


async def show(
    server: InProcessServer, widget: httpx.AsyncClient, hours_ago: int, *steps: tuple[str, str, str]
) -> None:
    """Funnel events (session, type, teaser id or "") as if they came `hours_ago`."""
    clock_of(server).offset = -hours_ago * HOUR_MS
    try:
        for session, kind, teaser in steps:
            await post_event(
                widget,
                session,
                type=kind,
                path="/chairs",
                ts=event_time(time.perf_counter_ns()),
                **({"teaserId": teaser} if teaser else {}),
            )
    finally:
        clock_of(server).offset = 0


async def test_the_funnel_over_a_day_is_counted_by_the_hour_it_was_shown(
    server: InProcessServer, operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    a, b, c = new_session_id(), new_session_id(), new_session_id()
    await show(server, widget, 5, (a, "teaser_shown", "tm_a1"), (a, "teaser_click", "tm_a1"))
    await show(server, widget, 5, (b, "teaser_shown", "tm_b1"))
    await show(server, widget, 2, (a, "teaser_shown", "tm_a2"), (a, "conversion", ""))
    await show(server, widget, 0, (c, "teaser_shown", "tm_c1"))
    fates = {"tm_a1": (1, 0), "tm_a2": (0, 1), "tm_b1": (0, 0), "tm_c1": (0, 0)}
    expected: Counter[tuple[str, str]] = Counter()
    for row in await feed(operator):
        if row.get("type") == "teaser_shown" and row["teaserId"] in fates:
            hour = row["at"][:13] + ":00:00.000Z"
            clicked, converted = fates[row["teaserId"]]
            expected.update({(hour, "shown"): 1, (hour, "clicked"): clicked})
            expected.update({(hour, "converted"): converted})

    report = json_of(await operator.get("/api/dashboard/conversions", params={"period": "24h"}))
    over = report["overTime"]
    counted = Counter(
        {
            (p["start"], name): p[name]
            for p in over["points"]
            for name in ("shown", "clicked", "converted")
        }
    )

    assert over["bucket"] == "hour" and len(over["points"]) in (24, 25)
    starts = [p["start"] for p in over["points"]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(s.endswith(":00:00.000Z") for s in starts) and starts[0] <= report["since"]
    assert +counted == +expected and sum(expected.values()) == 4 + 1 + 1
    for name in ("shown", "clicked", "converted"):
        assert sum(p[name] for p in over["points"]) == report["totals"][name]


async def test_longer_periods_count_by_the_day_and_all_starts_at_the_first_teaser(
    server: InProcessServer, operator: httpx.AsyncClient, widget: httpx.AsyncClient
) -> None:
    session = new_session_id()
    await show(server, widget, 30, (session, "teaser_shown", "tm_old"))

    week, whole = [
        json_of(await operator.get("/api/dashboard/conversions", params={"period": period}))
        for period in ("7d", "all")
    ]
    first_day = min(
        row["at"][:10] for row in await feed(operator) if row.get("type") == "teaser_shown"
    )

    assert week["overTime"]["bucket"] == whole["overTime"]["bucket"] == "day"
    assert len(week["overTime"]["points"]) in (7, 8)
    assert whole["since"] == whole["overTime"]["points"][0]["start"] == first_day + "T00:00:00.000Z"
    for report in (week, whole):
        assert sum(p["shown"] for p in report["overTime"]["points"]) == report["totals"]["shown"]
        assert all(p["start"].endswith("T00:00:00.000Z") for p in report["overTime"]["points"])


@pytest.mark.parametrize(
    "params", [{"period": "1y"}, {"since": "yesterday"}, {"period": "24h", "filter": "best"}]
)
async def test_a_bad_period_for_the_funnel_is_refused(
    operator: httpx.AsyncClient, params: dict[str, str]
) -> None:
    answer = await operator.get("/api/dashboard/conversions", params=params)
    assert answer.status_code == 422
    assert orjson.loads(answer.content)["error"]["code"]


async def test_the_last_24_hours_are_hourly_however_the_clock_moves_while_answering(
    server: InProcessServer, operator: httpx.AsyncClient
) -> None:
    # The period once ended at a second reading of the clock: a millisecond later made
    # it longer than a day, and the funnel went daily.
    clock_of(server).tick = 1
    try:
        answer = await operator.get("/api/dashboard/conversions", params={"period": "24h"})
    finally:
        clock_of(server).tick = 0
    report = json_of(answer)

    assert report["overTime"]["bucket"] == "hour"
    since, until = (datetime.fromisoformat(report[k]) for k in ("since", "until"))
    assert until - since == timedelta(hours=24)
