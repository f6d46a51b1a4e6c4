"""Custom events against one live server, on SQLite and on PostgreSQL: an `added_to_cart`
tracked twice scores, sends an automatic teaser and shows up in the funnel with the goal
that follows; a name, props or rate the site's rules don't take is refused, storing
nothing; the shop's backend posts the same events with the site's key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from sqlalchemy import select

from realtime.platform.tables import visitor_sessions, webhook_events_internal
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    InProcessServer,
    event_time,
    fresh_database,
    json_of,
    make_settings,
    new_session_id,
    rules_dir,
    serving,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SHOP, LIMITED = "goals-shop", "limited-shop"
# The limited shop's own rules: a tight rate, a purchase only its backend may report, and
# a window of 45 minutes; the other two sites run on the shipped defaults.
LIMITED_RULES = """
[[event]]
name = "ping"
max_per_minute = 3

[[event]]
name = "purchase"
server_only = true

[attribution]
window_minutes = 45

[[template]]
id = "hi"
situation = "any"
text = "Hi"
"""


@dataclass(frozen=True)
class Sites:
    shop: dict[str, str]
    limited: dict[str, str]


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessServer]:
    folder = Path(tmp_path_factory.mktemp("custom-events"))
    rules = rules_dir(folder, LIMITED, LIMITED_RULES)
    async with (
        fresh_database(request.param, folder) as url,
        serving(make_settings(database_url=url, rules_dir=str(rules))) as live,
    ):
        yield live


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sites(server: InProcessServer) -> Sites:
    assert server.runtime is not None
    _, shop_key = await server.runtime.sites.create(SHOP)
    _, limited_key = await server.runtime.sites.create(LIMITED)
    return Sites(
        {"X-API-Key": shop_key, "X-Site-ID": SHOP},
        {"X-API-Key": limited_key, "X-Site-ID": LIMITED},
    )


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: InProcessServer, sites: Sites) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        yield http


def event(session: str, kind: str = "page_view", site: str = DEMO_SITE, **fields: Any) -> Any:
    body = {"sessionId": session, "siteId": site, "type": kind, "path": "/", **fields}
    body.setdefault("ts", event_time(hash((session, kind, str(fields)))))
    return body


async def post(
    client: httpx.AsyncClient, body: Any, path: str = "/api/events", **headers: str
) -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers=headers)


async def rows_of(server: InProcessServer, session: str) -> list[Any]:
    assert server.runtime is not None
    events = webhook_events_internal.c
    query = select(webhook_events_internal).where(events.session_id == session).order_by(events.id)
    async with server.runtime.engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def state_of(server: InProcessServer, session: str) -> dict[str, Any]:
    assert server.runtime is not None
    query = select(visitor_sessions.c.state).where(visitor_sessions.c.session_id == session)
    async with server.runtime.engine.connect() as connection:
        state: dict[str, Any] = (await connection.execute(query)).scalar_one()
    return state


# ---- the story: track, teaser, funnel ------------------------------------------------------


async def test_added_to_cart_twice_scores_sends_a_teaser_and_shows_up_in_the_funnel(
    server: InProcessServer, client: httpx.AsyncClient, sites: Sites
) -> None:
    session = new_session_id()
    add = {"name": "added_to_cart", "props": {"sku": "chair-42", "price": 249.0}}
    await post(client, event(session, site=SHOP))
    first = await post(client, event(session, "track", SHOP, eventId="a1", **add))
    second = await post(client, event(session, "track", SHOP, eventId="a2", **add))
    polled = await client.post("/api/teaser-messages", json={"sessionId": session, "siteId": SHOP})
    [teaser] = json_of(polled)["messages"]
    trigger_row = (await rows_of(server, session))[-1]
    # The visitor sees it, adds once more and buys: both within the window.
    await post(client, event(session, "teaser_shown", SHOP, teaserId=teaser["id"]))
    await post(client, event(session, "track", SHOP, eventId="a3", **add))
    await post(client, event(session, "goal", SHOP, name="purchase", value=49.9))
    answer = await client.get(
        "/api/dashboard/conversions", params={"period": "24h"}, headers=sites.shop
    )
    report = json_of(answer)
    journey = await client.get(f"/api/dashboard/sessions/{session}", headers=sites.shop)

    assert json_of(journey)["converted"] is True  # the goal, with no conversion event
    assert (json_of(first), json_of(second)) == (
        {"score": 0, "triggered": False},
        {"score": 20, "triggered": True},
    )
    assert teaser["priority"] == "auto" and teaser["message"].startswith("🛒 Good picks!")
    explained = trigger_row.explanation
    assert explained["score"]["added"] == [
        {"rule": "cart_adds", "label": "Added to cart twice", "points": 20,
         "detail": "added_to_cart 2+ times"},
    ]  # fmt: skip
    assert explained["trigger"]["reasons"] == ["2 × added_to_cart ≥ 2"]
    assert explained["trigger"]["template"] == "cart_help"
    assert trigger_row.payload.items() >= {"type": "track", "name": "added_to_cart"}.items()
    assert trigger_row.payload["props"] == {"sku": "chair-42", "price": 249.0}
    assert report["totals"] == {
        "shown": 1, "clicked": 0, "converted": 1, "clickRate": 0.0, "conversionRate": 1.0,
        "value": 49.9, "events": {"added_to_cart": 1, "purchase": 1},
    }  # fmt: skip
    assert [row["key"] for row in report["byTemplate"]] == ["cart_help"]
    assert report["goals"] == [
        {"key": "purchase", "count": 1, "value": 49.9, "attributed": 1, "attributedValue": 49.9}
    ]
    assert report["attribution"] == {"model": "last_shown_within", "windowMinutes": 30}
    assert (await state_of(server, session))["custom_events"] == {
        "added_to_cart": 3,
        "purchase": 1,
    }


# ---- what the rules don't take is refused, and nothing is stored ---------------------------

REFUSED: list[Any] = [
    pytest.param({"type": "track", "name": "wishlist"}, 422, "name",
                 "'wishlist' is not an event this site declares", id="an undeclared name"),
    pytest.param({"type": "goal", "name": "refund"}, 422, "name",
                 "is not an event this site declares", id="an undeclared goal"),
    pytest.param({"type": "track"}, 422, "name", "is required on a track event",
                 id="a track without a name"),
    pytest.param({"type": "track", "name": "added_to_cart",
                  "props": {"a": "x" * 400, "b": "x" * 400, "c": "x" * 400}}, 422, "props",
                 "bytes as JSON; added_to_cart takes at most 1024", id="props too big"),
    pytest.param({"type": "track", "name": "added_to_cart", "props": {"item": {"sku": 1}}},
                 422, "props[...]", "must be a string", id="nested props"),
    pytest.param({"type": "track", "name": "added_to_cart", "props": {"a b": 1}}, 422,
                 "props", "keys must be names", id="a prop name with a space"),
    pytest.param({"type": "track", "name": "added to cart"}, 422, "name",
                 "must be an event name", id="a name with spaces"),
]  # fmt: skip


@pytest.mark.parametrize("fields,status,field,words", REFUSED)
async def test_an_event_the_rules_do_not_take_is_refused_naming_the_field(
    server: InProcessServer,
    client: httpx.AsyncClient,
    fields: dict[str, Any],
    status: int,
    field: str,
    words: str,
) -> None:
    session = new_session_id()
    response = await post(client, {**event(session), **fields})
    error = json_of(response)["error"]

    assert (response.status_code, error["code"]) == (status, "invalid_field")
    assert error["message"].startswith(f"{field}: ") and words in error["message"]
    assert await rows_of(server, session) == []


async def test_past_the_declared_rate_a_session_gets_429_naming_the_event(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session, other = new_session_id(), new_session_id()
    pings = [
        await post(client, event(session, "track", LIMITED, name="ping", eventId=f"p{n}"))
        for n in range(4)
    ]
    elsewhere = await post(client, event(other, "track", LIMITED, name="ping"))

    assert [p.status_code for p in pings] == [202, 202, 202, 429]
    assert json_of(pings[-1])["error"]["code"] == "rate_limited"
    assert "too many 'ping' events for this session" in json_of(pings[-1])["error"]["message"]
    assert int(pings[-1].headers["retry-after"]) >= 1
    assert elsewhere.status_code == 202  # one session's flood leaves another alone
    assert len(await rows_of(server, session)) == 3


# ---- from the shop's backend, with the site's key ------------------------------------------


async def test_the_backend_posts_a_goal_with_the_key_and_a_retry_counts_once(
    server: InProcessServer, client: httpx.AsyncClient, sites: Sites
) -> None:
    session = new_session_id()
    await post(client, event(session, site=LIMITED))
    order = event(session, "goal", LIMITED, name="purchase", value=120, eventId="order-1042")
    from_browser = await post(client, order)
    answers = [await post(client, order, "/api/events/server", **sites.limited) for _ in "12"]
    rows = await rows_of(server, session)
    report = json_of(
        await client.get("/api/dashboard/conversions", headers=sites.limited, params={"q": ""})
    )

    assert (from_browser.status_code, json_of(from_browser)["error"]["code"]) == (
        403,
        "server_only_event",
    )
    assert [a.status_code for a in answers] == [202, 202]
    assert [(r.type, r.explanation["duplicate"]) for r in rows] == [
        ("page_view", False),
        ("goal", False),
        ("goal", True),
    ]
    assert rows[1].payload["eventId"] == "order-1042" and rows[1].payload["value"] == 120
    assert (await state_of(server, session))["conversions"] == 1
    assert report["goals"][0].items() >= {"key": "purchase", "count": 2, "value": 240.0}.items()
    assert report["attribution"]["windowMinutes"] == 45


WRONG_KEY = {"X-API-Key": "not-the-key", "X-Site-ID": SHOP}
SERVER_REFUSALS: list[Any] = [
    # (whose key, which site the body names, whose session, status, code)
    pytest.param(None, SHOP, "shop's", 401, "missing_credentials", id="without the key"),
    pytest.param("wrong", SHOP, "shop's", 401, "invalid_credentials", id="with a wrong key"),
    pytest.param("demo", DEMO_SITE, "shop's", 404, "session_not_found",
                 id="for another site's session"),
    pytest.param("demo", SHOP, "shop's", 422, "invalid_field",
                 id="naming another site in the body"),
    pytest.param("shop", SHOP, "nobody's", 404, "session_not_found",
                 id="for a session the site never had"),
]  # fmt: skip


@pytest.mark.parametrize("key,body_site,whose,status,code", SERVER_REFUSALS)
async def test_a_server_post_without_the_sites_key_or_session_is_refused(
    server: InProcessServer,
    client: httpx.AsyncClient,
    sites: Sites,
    key: str | None,
    body_site: str,
    whose: str,
    status: int,
    code: str,
) -> None:
    session = new_session_id()
    if whose == "shop's":
        await post(client, event(session, site=SHOP))
    headers = {"demo": DEMO_HEADERS, "shop": sites.shop, "wrong": WRONG_KEY}.get(key or "", {})
    body = event(session, "goal", body_site, name="purchase", value=10)
    response = await post(client, body, "/api/events/server", **headers)

    assert (response.status_code, json_of(response)["error"]["code"]) == (status, code)
    assert [row.type for row in await rows_of(server, session)] in ([], ["page_view"])


async def test_a_server_post_needs_no_session_token_where_the_widget_needs_one(
    tmp_path: Path,
) -> None:
    live = InProcessServer(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}",
            require_session_token=True,
        )
    )
    await live.start()
    try:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as client:
            opened = json_of(await client.post("/api/sessions", json={"siteId": DEMO_SITE}))
            session, token = opened["sessionId"], opened["token"]
            await post(client, event(session, token=token))
            goal = event(session, "goal", name="purchase", value=5)
            bare = await post(client, goal)
            keyed = await post(client, goal, "/api/events/server", **DEMO_HEADERS)
    finally:
        await live.stop()

    assert (bare.status_code, json_of(bare)["error"]["code"]) == (401, "invalid_session_token")
    assert (keyed.status_code, json_of(keyed)) == (202, {"score": 0, "triggered": False})
