"""Hostile input against one live server: every refusal has its status and error code, and
leaves every stored row exactly as it was; hostile text that is accepted is kept verbatim."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest
import pytest_asyncio
from msgspec import structs
from sqlalchemy import Table, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.openapi.operations import OPERATIONS
from realtime.contract import ViewQuery, WidgetRequest
from realtime.platform.tables import (
    idempotency_keys,
    session_counters,
    site_keys,
    sites,
    teaser_messages,
    teaser_polls,
    visitor_sessions,
    webhook_events_internal,
)
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    InProcessServer,
    drop_postgres_database,
    event_time,
    fresh_postgres_database,
    make_settings,
    new_session_id,
)

# One server for the whole module: each test compares the database before and after itself.
pytestmark = pytest.mark.asyncio(loop_scope="module")

SITE_B = "site-b"
TABLES: tuple[Table, ...] = (
    sites,
    site_keys,
    teaser_messages,
    session_counters,
    idempotency_keys,
    teaser_polls,
    webhook_events_internal,
    visitor_sessions,
)
Row = dict[str, Any]
Snapshot = dict[str, list[Row]]


@dataclass(frozen=True)
class Tenants:
    key_b: str
    headers_b: dict[str, str]


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessServer]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('hostile')) / 'teaser.db'}"
    else:
        url = await fresh_postgres_database()
    # Poll marks are written only when a snapshot flushes them, never halfway through one.
    live = InProcessServer(make_settings(database_url=url, poll_flush_interval=3600))
    await live.start()
    try:
        yield live
    finally:
        await live.stop()
        if request.param == "postgresql":
            await drop_postgres_database(url)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tenants(server: InProcessServer) -> Tenants:
    """Site B beside the demo site A, and rows in every table, so a snapshot has teeth."""
    assert server.runtime is not None
    _, key_b = await server.runtime.sites.create(SITE_B)
    headers_b = {"X-API-Key": key_b, "X-Site-ID": SITE_B}
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for headers in (DEMO_HEADERS, headers_b):
            session = new_session_id()
            await client.put(
                "/api/teaser-messages",
                json={"sessionId": session, "message": "x"},
                headers={**headers, "Idempotency-Key": "seed"},
            )
            site = headers["X-Site-ID"]
            await client.post(
                "/api/events",
                json={
                    "sessionId": session,
                    "siteId": site,
                    "type": "page_view",
                    "customerEmail": "seed@example.com",
                },
            )
            await client.post("/api/teaser-messages", json={"sessionId": session, "siteId": site})
    return Tenants(key_b, headers_b)


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: InProcessServer, tenants: Tenants) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        yield http


async def snapshot(server: InProcessServer) -> Snapshot:
    assert server.runtime is not None
    await server.runtime.presence.flush()  # poll marks are batched in memory
    await server.runtime.store.settle()  # as the worker does every 2 s, in the background
    async with server.runtime.engine.connect() as connection:
        return {
            table.name: sorted(
                (dict(row._mapping) for row in await connection.execute(select(table))), key=repr
            )
            for table in TABLES
        }


def diff(before: Snapshot, after: Snapshot) -> dict[str, tuple[list[Row], list[Row]]]:
    """For each table that changed: (rows gone or changed, rows new or changed)."""
    return {
        name: ([r for r in rows if r not in after[name]], [r for r in after[name] if r not in rows])
        for name, rows in before.items()
        if rows != after[name]
    }


def code_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return str(response.json()["error"]["code"])


# --- Bodies that are not JSON ---------------------------------------------------------------

JSON_ENDPOINTS: list[tuple[str, str, dict[str, str]]] = [
    ("PUT", "/api/teaser-messages", DEMO_HEADERS),
    ("POST", "/api/teaser-messages", {}),
    ("POST", "/api/events", {}),
    ("POST", "/api/sessions", {}),
    ("POST", "/api/privacy/erase", DEMO_HEADERS),
]
UNREADABLE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"sessionId": "s1", "message": '),
    ("trailing garbage", b'{"sessionId": "s1"} x'),
    ("single quotes", b"{'sessionId': 's1'}"),
    ("NaN", b'{"sessionId": "s1", "message": "x", "expiresIn": NaN}'),
    ("Infinity", b'{"sessionId": "s1", "message": "x", "expiresIn": Infinity}'),
    ("invalid UTF-8", b'{"sessionId": "s1", "message": "\xff\xfe"}'),
    ("overlong UTF-8 slash", b'{"sessionId": "s1", "message": "\xc0\xaf"}'),
    ("lone surrogate", b'{"sessionId": "s1", "message": "\\ud800"}'),
    ("raw NUL byte in a string", b'{"sessionId": "s1", "message": "a\x00b"}'),
    ("nesting past any parser's depth", b"[" * 5000),
]


@pytest.mark.parametrize("raw", [c[1] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE])
@pytest.mark.parametrize(
    "method,path,headers", JSON_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in JSON_ENDPOINTS]
)
async def test_a_body_that_is_not_json_is_400_and_changes_nothing(
    server: InProcessServer,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    raw: bytes,
) -> None:
    before = await snapshot(server)
    response = await client.request(
        method, path, content=raw, headers={"Content-Type": "application/json", **headers}
    )

    assert (response.status_code, code_of(response)) == (400, "malformed_json")
    assert diff(before, await snapshot(server)) == {}


# --- Fields of the wrong type or out of range -----------------------------------------------

SEND = {"sessionId": "sess_1", "message": "hi"}
WIDGET = {"sessionId": "sess_1", "siteId": DEMO_SITE}
EVENT = {**WIDGET, "type": "page_view", "path": "/"}
SEND_PATH, POLL_PATH, EVENT_PATH = "/api/teaser-messages", "/api/teaser-messages", "/api/events"
HOSTILE_FIELDS: list[tuple[str, str, str, Any, str]] = [
    # (case, method, path, body, field named in the 422)
    ("expiresIn negative", "PUT", SEND_PATH, {**SEND, "expiresIn": -1}, "expiresIn"),
    ("expiresIn zero", "PUT", SEND_PATH, {**SEND, "expiresIn": 0}, "expiresIn"),
    ("expiresIn 1e18", "PUT", SEND_PATH, {**SEND, "expiresIn": 1e18}, "expiresIn"),
    ("expiresIn 2**63", "PUT", SEND_PATH, {**SEND, "expiresIn": 2**63}, "expiresIn"),
    ("expiresIn '5'", "PUT", SEND_PATH, {**SEND, "expiresIn": "5"}, "expiresIn"),
    ("expiresIn '5000'", "PUT", SEND_PATH, {**SEND, "expiresIn": "5000"}, "expiresIn"),
    ("expiresIn null", "PUT", SEND_PATH, {**SEND, "expiresIn": None}, "expiresIn"),
    ("expiresIn a list", "PUT", SEND_PATH, {**SEND, "expiresIn": [5000]}, "expiresIn"),
    ("expiresIn true", "PUT", SEND_PATH, {**SEND, "expiresIn": True}, "expiresIn"),
    ("message an object", "PUT", SEND_PATH, {**SEND, "message": {"$gt": ""}}, "message"),
    ("message a list", "PUT", SEND_PATH, {**SEND, "message": ["hi"]}, "message"),
    ("message with NUL", "PUT", SEND_PATH, {**SEND, "message": "a\u0000b"}, "message"),
    ("message with ESC", "PUT", SEND_PATH, {**SEND, "message": "\u001b[31mred"}, "message"),
    ("message with DEL", "PUT", SEND_PATH, {**SEND, "message": "a\u007fb"}, "message"),
    ("sessionId with NUL", "PUT", SEND_PATH, {**SEND, "sessionId": "s\u00001"}, "sessionId"),
    ("sessionId with CRLF", "PUT", SEND_PATH, {**SEND, "sessionId": "s1\r\nx"}, "sessionId"),
    ("sessionId a number", "PUT", SEND_PATH, {**SEND, "sessionId": 1}, "sessionId"),
    ("priority a number", "PUT", SEND_PATH, {**SEND, "priority": 1}, "priority"),
    ("bulk item bad", "PUT", SEND_PATH, [SEND, {**SEND, "expiresIn": -1}], "[1].expiresIn"),
    ("bulk item not an object", "PUT", SEND_PATH, [SEND, "hi"], "[1]"),
    ("body null", "PUT", SEND_PATH, None, "body"),
    ("body a number", "PUT", SEND_PATH, 42, "body"),
    ("poll siteId a number", "POST", POLL_PATH, {**WIDGET, "siteId": 7}, "siteId"),
    ("poll siteId with NUL", "POST", POLL_PATH, {**WIDGET, "siteId": "wood\u0000"}, "siteId"),
    ("poll path not a path", "POST", POLL_PATH, {**WIDGET, "path": "javascript:x"}, "path"),
    ("poll since negative", "POST", POLL_PATH, {**WIDGET, "since": -1}, "since"),
    ("poll since 1e30", "POST", POLL_PATH, {**WIDGET, "since": 1e30}, "since"),
    ("poll token an object", "POST", POLL_PATH, {**WIDGET, "token": {"a": 1}}, "token"),
    ("poll body a list", "POST", POLL_PATH, [WIDGET], "body"),
    ("event type unknown", "POST", EVENT_PATH, {**EVENT, "type": "purchase"}, "type"),
    ("event type an object", "POST", EVENT_PATH, {**EVENT, "type": {}}, "type"),
    ("event type a list", "POST", EVENT_PATH, {**EVENT, "type": []}, "type"),
    ("event type a number", "POST", EVENT_PATH, {**EVENT, "type": 1}, "type"),
    ("event path with NUL", "POST", EVENT_PATH, {**EVENT, "path": "/a\u0000"}, "path"),
    ("event seconds '5'", "POST", EVENT_PATH, {**EVENT, "secondsOnPage": "5"}, "secondsOnPage"),
    ("event seconds 1e18", "POST", EVENT_PATH, {**EVENT, "secondsOnPage": 1e18}, "secondsOnPage"),
    ("event seconds -1", "POST", EVENT_PATH, {**EVENT, "secondsOnPage": -1}, "secondsOnPage"),
    ("event utm a string", "POST", EVENT_PATH, {**EVENT, "utm": "x"}, "utm"),
    ("event utm unknown key", "POST", EVENT_PATH, {**EVENT, "utm": {"utm_x": "a"}}, "utm.utm_x"),
    ("event utm not text", "POST", EVENT_PATH,
     {**EVENT, "utm": {"utm_source": ["a"]}}, "utm.utm_source"),
    ("event utm 10 KB", "POST", EVENT_PATH,
     {**EVENT, "utm": {"utm_source": "a" * 10_000}}, "utm.utm_source"),
    ("event e-mail forged shape", "POST", EVENT_PATH,
     {**EVENT, "customerEmail": "a@b@c"}, "customerEmail"),
    ("event zone with a control character", "POST", EVENT_PATH,
     {**EVENT, "timeZone": "Europe/\u0000Berlin"}, "timeZone"),
    ("event value negative", "POST", EVENT_PATH, {**EVENT, "value": -1}, "value"),
    ("event ts not a date", "POST", EVENT_PATH, {**EVENT, "ts": "not-a-date"}, "ts"),
    ("event ts in year 99999", "POST", EVENT_PATH,
     {**EVENT, "ts": "99999-01-01T00:00:00Z"}, "ts"),
    ("event ts in year 0", "POST", EVENT_PATH, {**EVENT, "ts": "0000-06-01T00:00:00Z"}, "ts"),
    ("event ts on 30 February", "POST", EVENT_PATH,
     {**EVENT, "ts": "2026-02-30T10:00:00Z"}, "ts"),
    ("event ts without an offset", "POST", EVENT_PATH,
     {**EVENT, "ts": "2026-12-01T10:00:00"}, "ts"),
    ("event ts epoch digits", "POST", EVENT_PATH, {**EVENT, "ts": "1764582000000"}, "ts"),
    ("event ts hour 24", "POST", EVENT_PATH, {**EVENT, "ts": "2026-12-01T24:00:00Z"}, "ts"),
    ("event zone a path out", "POST", EVENT_PATH,
     {**EVENT, "timeZone": "../../etc/localtime"}, "timeZone"),
    ("event zone absolute", "POST", EVENT_PATH,
     {**EVENT, "timeZone": "/usr/share/zoneinfo/UTC"}, "timeZone"),
    ("event zone 65 characters", "POST", EVENT_PATH,
     {**EVENT, "timeZone": "A" * 65}, "timeZone"),
    ("session siteId a list", "POST", "/api/sessions", {"siteId": ["a"]}, "siteId"),
    ("erase nobody", "POST", "/api/privacy/erase", {}, "email"),
    ("erase e-mail a number", "POST", "/api/privacy/erase", {"email": 5}, "email"),
    ("erase id 10 KB", "POST", "/api/privacy/erase", {"customerId": "x" * 10_000}, "customerId"),
]  # fmt: skip


@pytest.mark.parametrize(
    "method,path,body,field", [c[1:] for c in HOSTILE_FIELDS], ids=[c[0] for c in HOSTILE_FIELDS]
)
async def test_a_hostile_field_is_422_naming_it_and_changes_nothing(
    server: InProcessServer,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    headers = DEMO_HEADERS if method == "PUT" or path.endswith("erase") else {}
    before = await snapshot(server)
    response = await client.request(method, path, content=orjson.dumps(body), headers=headers)

    assert (response.status_code, code_of(response)) == (422, "invalid_field")
    assert response.json()["error"]["message"].startswith(field + ":")
    assert diff(before, await snapshot(server)) == {}


# --- Hostile text that is accepted is kept verbatim, as text ---------------------------------

XSS = [
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg/onload=alert(1)>',
    "</script><script>alert(1)</script>",
    '<a href="javascript:alert(1)">20% off</a>',
    "&lt;b&gt;already escaped&lt;/b&gt;",
    "{{constructor.constructor('alert(1)')()}}",
    "${alert(1)}",
    "\u202egnp.exe",  # right-to-left override
    "'; DROP TABLE teaser_messages; --",
]


@pytest.mark.parametrize("text", XSS)
async def test_markup_in_a_message_is_stored_and_returned_verbatim(
    server: InProcessServer, client: httpx.AsyncClient, text: str
) -> None:
    session = new_session_id()
    sent = await client.put(
        "/api/teaser-messages", headers=DEMO_HEADERS, json={"sessionId": session, "message": text}
    )
    status = await client.get(f"/api/teaser-messages/{sent.json()['id']}", headers=DEMO_HEADERS)
    polled = await client.post(
        "/api/teaser-messages", json={"sessionId": session, "siteId": DEMO_SITE}
    )
    [row] = [r for r in (await snapshot(server))["teaser_messages"] if r["id"] == sent.json()["id"]]

    assert sent.status_code == 201
    assert all(r.headers["content-type"] == "application/json" for r in (sent, status, polled))
    assert sent.json()["message"] == status.json()["message"] == text
    assert [m["message"] for m in polled.json()["messages"]] == [text]
    assert row["message"] == text


SQL = [
    "' OR '1'='1",
    "1; DROP TABLE webhook_events_internal; --",
    "Robert'); DROP TABLE visitor_sessions;--",
    '" UNION SELECT key_hash FROM site_keys --',
    "%' AND 1=1 --",
    "\\'; SELECT pg_sleep(5); --",
]


@pytest.mark.parametrize("text", SQL)
async def test_sql_in_utm_fields_is_stored_verbatim_and_touches_no_other_row(
    server: InProcessServer, client: httpx.AsyncClient, text: str
) -> None:
    session = new_session_id()
    utm = {"utm_source": text, "utm_campaign": text, "utm_term": text}
    before = await snapshot(server)
    response = await client.post("/api/events", json={**EVENT, "sessionId": session, "utm": utm})
    changed = diff(before, await snapshot(server))

    assert (response.status_code, response.json()) == (202, {"score": 20, "triggered": False})
    assert set(changed) == {"webhook_events_internal", "visitor_sessions"}
    ([], [event]), ([], [visitor]) = changed["webhook_events_internal"], changed["visitor_sessions"]
    assert event["session_id"] == visitor["session_id"] == session
    assert event["payload"]["utm"] == visitor["state"]["utm"] == utm


# --- Time zones that are well formed but not this server's to use ---------------------------

UNUSABLE_ZONES = ["Mars/Phobos", "localtime", "Factory", "Etc/Nowhere", "posixrules"]


@pytest.mark.parametrize("zone", UNUSABLE_ZONES)
async def test_a_well_formed_zone_the_server_lacks_is_stored_as_absent(
    server: InProcessServer, client: httpx.AsyncClient, zone: str
) -> None:
    session = new_session_id()
    body = {**EVENT, "sessionId": session, "ts": event_time(9), "timeZone": zone}
    response = await client.post("/api/events", json=body)
    after = await snapshot(server)
    [event] = [r for r in after["webhook_events_internal"] if r["session_id"] == session]
    [visitor] = [r for r in after["visitor_sessions"] if r["session_id"] == session]

    assert response.status_code == 202
    assert event["payload"]["timeZone"] is None and visitor["state"]["time_zone"] is None


async def test_a_real_zone_and_time_are_kept_as_given(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    ts = "2026-12-01T09:30:00.123+01:00"
    body = {**EVENT, "sessionId": session, "ts": ts, "timeZone": "America/Argentina/Salta"}
    response = await client.post("/api/events", json=body)
    after = await snapshot(server)
    [event] = [r for r in after["webhook_events_internal"] if r["session_id"] == session]

    assert response.status_code == 202
    assert (event["payload"]["ts"], event["payload"]["timeZone"]) == (
        ts,
        "America/Argentina/Salta",
    )


# --- Replayed and forged events ---------------------------------------------------------------

REPLAYS: list[tuple[str, dict[str, Any]]] = [
    ("campaign visit", {"path": "/chairs", "ts": event_time(1),
                        "utm": {"utm_source": "facebook", "utm_medium": "cpc",
                                "utm_campaign": "sale"}}),
    ("a minute on a page", {"type": "time_on_page", "path": "/chairs", "secondsOnPage": 90}),
    ("known customer", {"path": "/about", "ts": event_time(1), "customerId": "c-1",
                        "customerEmail": "alice@example.com"}),
]  # fmt: skip


@pytest.mark.parametrize("fields", [c[1] for c in REPLAYS], ids=[c[0] for c in REPLAYS])
async def test_a_replayed_event_is_stored_but_never_raises_the_score_or_sends_again(
    server: InProcessServer, client: httpx.AsyncClient, fields: dict[str, Any]
) -> None:
    session = new_session_id()
    body = {**EVENT, "sessionId": session, **fields}
    answers = [await client.post("/api/events", json=body) for _ in range(6)]
    after = await snapshot(server)
    events = [r for r in after["webhook_events_internal"] if r["session_id"] == session]
    [visitor] = [r for r in after["visitor_sessions"] if r["session_id"] == session]
    sent = [r for r in after["teaser_messages"] if r["session_id"] == session]

    first = answers[0].json()
    assert [a.status_code for a in answers] == [202] * 6
    assert [a.json()["score"] for a in answers] == [first["score"]] * 6 and first["score"] > 0
    assert [a.json()["triggered"] for a in answers[1:]] == [False] * 5
    assert len(sent) == int(first["triggered"])
    assert sorted(e["explanation"]["duplicate"] for e in events) == [False] + [True] * 5
    assert visitor["score"] == first["score"]
    assert visitor["state"]["page_views"] == int(body["type"] == "page_view")


NEW_FACTS: list[Any] = [
    pytest.param({"customerId": "12345"}, 25, True, id="a customer id"),
    pytest.param({"customerEmail": "ann@example.com"}, 20, False, id="a customer e-mail"),
    pytest.param({"utm": {"utm_campaign": "spring"}}, 20, False, id="a UTM campaign"),
]


@pytest.mark.parametrize("fact,points,triggers", NEW_FACTS)
async def test_a_repeat_without_ts_that_brings_a_new_fact_is_learned_not_dropped(
    server: InProcessServer,
    client: httpx.AsyncClient,
    fact: dict[str, Any],
    points: int,
    triggers: bool,
) -> None:
    """A shop's backend reports the page view, then again once it knows who it was."""
    session = new_session_id()
    body = {**EVENT, "sessionId": session, "path": "/about"}
    first = await client.post("/api/events", json=body)
    again = await client.post("/api/events", json={**body, **fact})
    replay = await client.post("/api/events", json={**body, **fact})
    after = await snapshot(server)
    events = [r for r in after["webhook_events_internal"] if r["session_id"] == session]
    [visitor] = [r for r in after["visitor_sessions"] if r["session_id"] == session]
    sent = [r for r in after["teaser_messages"] if r["session_id"] == session]

    assert again.json()["score"] == first.json()["score"] + points
    assert replay.json() == {"score": again.json()["score"], "triggered": False}
    assert again.json()["triggered"] is triggers and len(sent) == int(triggers)
    assert visitor["state"]["page_views"] == 1
    duplicates = [e["explanation"]["duplicate"] for e in sorted(events, key=lambda e: e["id"])]
    assert duplicates == [False, False, True]


async def test_a_forged_customer_email_does_not_merge_another_session_into_yours(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    alice, mallory = new_session_id(), new_session_id()
    identity = {"customerEmail": "alice@example.com", "customerId": "alice-42"}
    await client.post(
        "/api/events", json={**EVENT, "sessionId": alice, "ts": event_time(1), **identity}
    )
    for_alice = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": alice, "message": "for Alice only"},
    )
    before = await snapshot(server)

    forged = await client.post(
        "/api/events",
        json={**EVENT, "sessionId": mallory, "path": "/checkout", "ts": event_time(1), **identity},
    )
    polled = await client.post("/api/teaser-messages", json={**WIDGET, "sessionId": mallory})
    after = await snapshot(server)
    changed = diff(before, after)
    visitors = {r["session_id"]: r for r in after["visitor_sessions"]}

    assert forged.status_code == 202
    assert for_alice.json()["id"] not in [m["id"] for m in polled.json()["messages"]]
    assert {r["session_id"] for gone, new in changed.values() for r in gone + new} == {mallory}
    assert (visitors[alice]["score"], visitors[alice]["state"]["paths"]) == (45, ["/"])
    assert (visitors[mallory]["score"], visitors[mallory]["state"]["paths"]) == (75, ["/checkout"])


# --- Raw HTTP: bodies too large to read, headers no client library would send ----------------


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        if not self.headers.get("content-type", "").startswith("application/json"):
            return None
        error = json.loads(self.body).get("error")
        return None if error is None else str(error["code"])


def request_head(method: str, path: str, headers: dict[str, str], *extra: bytes) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return "\r\n".join(lines).encode() + b"\r\n" + b"".join(extra) + b"\r\n"


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (ln.split(":", 1) for ln in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawAnswer(int(status_line.split()[1]), headers, body)


async def exchange(
    port: int, data: bytes, then: Callable[[asyncio.StreamWriter], Any] | None = None
) -> RawAnswer:
    """Write `data`, maybe start `then(writer)` alongside, and read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    feeding = asyncio.ensure_future(then(writer)) if then is not None else None
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), 5)
    finally:
        if feeding is not None:
            feeding.cancel()
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


MIB = 1024 * 1024
HUGE: list[tuple[str, str, dict[str, str], int]] = [
    ("PUT", "/api/teaser-messages", DEMO_HEADERS, 2 * MIB),  # over the bulk-send limit too
    ("POST", "/api/teaser-messages", {}, MIB),
    ("POST", "/api/events", {}, MIB),
    ("POST", "/api/sessions", {}, MIB),
    ("POST", "/api/privacy/erase", DEMO_HEADERS, MIB),
]


@pytest.mark.parametrize(
    "method,path,headers,declared", HUGE, ids=[f"{m} {p}" for m, p, _, _ in HUGE]
)
async def test_a_huge_declared_body_is_refused_before_the_client_has_sent_it(
    server: InProcessServer, method: str, path: str, headers: dict[str, str], declared: int
) -> None:
    before = await snapshot(server)
    head = request_head(
        method,
        path,
        {**headers, "Content-Type": "application/json", "Content-Length": str(declared)},
    )
    # Only 1 KiB of the body is ever sent: the answer must come without the rest.
    answer = await exchange(server.port, head + b'{"sessionId": "' + b"x" * 1024)

    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert diff(before, await snapshot(server)) == {}


@pytest.mark.parametrize(
    "method,path,headers,declared", HUGE, ids=[f"{m} {p}" for m, p, _, _ in HUGE]
)
async def test_a_huge_streamed_body_is_refused_once_it_passes_the_limit(
    server: InProcessServer, method: str, path: str, headers: dict[str, str], declared: int
) -> None:
    sent = 0

    async def stream(writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        while sent < declared:
            writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
            sent += 0x4000
            await writer.drain()
            await asyncio.sleep(0.001)

    before = await snapshot(server)
    head = request_head(method, path, {**headers, "Transfer-Encoding": "chunked"})
    answer = await exchange(server.port, head, then=stream)

    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert sent < declared
    assert diff(before, await snapshot(server)) == {}


SITE_HEADERS: list[tuple[str, bytes, int, str | None]] = [
    # (case, raw X-Site-ID header line(s), status, error code: bad_request is the HTTP
    # parser's refusal, in JSON as every other)
    ("CRLF then a header", b"X-Site-ID: woodstock_outlet\r\nX-Forwarded-For: 1.2.3.4\r\n"
     b"X-Site-ID: site-b\r\n", 201, None),
    ("bare LF", b"X-Site-ID: woodstock\n_outlet\r\n", 400, "bad_request"),
    ("bare CR", b"X-Site-ID: woodstock\r_outlet\r\n", 400, "bad_request"),
    ("obsolete line folding", b"X-Site-ID: woodstock_outlet\r\n site-b\r\n", 400, "bad_request"),
    ("NUL", b"X-Site-ID: woodstock\x00_outlet\r\n", 400, "bad_request"),
    ("Latin-1 bytes", b"X-Site-ID: woodst\xf6ck\r\n", 401, "invalid_credentials"),
    ("10 KB", b"X-Site-ID: " + b"a" * 10_240 + b"\r\n", 401, "invalid_credentials"),
    ("10 KB of CRLF-looking text", b"X-Site-ID: " + b"%0d%0a" * 1707 + b"\r\n",
     401, "invalid_credentials"),
    ("another site first", b"X-Site-ID: site-b\r\nX-Site-ID: woodstock_outlet\r\n",
     401, "invalid_credentials"),
]  # fmt: skip


@pytest.mark.parametrize(
    "line,status,code", [c[1:] for c in SITE_HEADERS], ids=[c[0] for c in SITE_HEADERS]
)
async def test_a_mangled_site_header_never_sends_for_another_site(
    server: InProcessServer, line: bytes, status: int, code: str | None
) -> None:
    body = orjson.dumps({"sessionId": new_session_id(), "message": "smuggled?"})
    head = request_head(
        "PUT",
        "/api/teaser-messages",
        {
            "X-API-Key": DEMO_HEADERS["X-API-Key"],
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        },
        line,
    )
    before = await snapshot(server)
    answer = await exchange(server.port, head + body)
    changed = diff(before, await snapshot(server))

    assert (answer.status, answer.code) == (status, code)
    stored = [row for _, new in changed.values() for row in new if "message" in row]
    assert [(r["site_id"], r["message"]) for r in stored] == (
        [(DEMO_SITE, "smuggled?")] if status == 201 else []
    )


# --- WebSocket frames ---------------------------------------------------------------------------


def socket_url(server: InProcessServer, session: str) -> str:
    return f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={DEMO_SITE}"


async def send_to(client: httpx.AsyncClient, session: str, message: str = "hi") -> str:
    response = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": message},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def next_teaser(socket: ClientConnection, timeout: float = 2.0) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if frame["type"] == "teaser":
            return dict(frame)


async def status_of(client: httpx.AsyncClient, message_id: str) -> str:
    response = await client.get(f"/api/teaser-messages/{message_id}", headers=DEMO_HEADERS)
    return str(response.json()["status"])


async def wait_for_status(client: httpx.AsyncClient, message_id: str, wanted: str) -> None:
    for _ in range(100):
        if await status_of(client, message_id) == wanted:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} never became {wanted}")


@pytest.mark.parametrize(
    "frame",
    ["x" * 65_537, b"\x00" * 65_537, '{"type":"pong","pad":"' + "x" * 65_600 + '"}'],
    ids=["text", "binary", "json"],
)
async def test_a_frame_over_64_kib_closes_the_socket_with_1009_and_loses_nothing(
    server: InProcessServer, client: httpx.AsyncClient, frame: str | bytes
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session), max_size=None) as socket:
        await send_to(client, session)
        held = await next_teaser(socket)
        await socket.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    await asyncio.sleep(0.1)  # the server gives back what the socket held
    polled = await client.post("/api/teaser-messages", json={**WIDGET, "sessionId": session})

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert [m["id"] for m in polled.json()["messages"]] == [held["id"]]


async def test_a_frame_of_exactly_64_kib_is_accepted(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session), max_size=None) as socket:
        await socket.send("x" * 65_536)
        sent = await send_to(client, session)
        assert (await next_teaser(socket))["id"] == sent


GARBAGE: list[tuple[str, str | bytes]] = [
    # VICTIM stands for the id of a message leased to another socket, SESSION for its session.
    ("binary", b"\x00\xff\xfe garbage"),
    ("binary JSON ack", b'{"type":"ack","id":"VICTIM"}'),
    ("not JSON", "hello"),
    ("truncated JSON", '{"type":"ack","id":'),
    ("JSON list", '["ack", "VICTIM"]'),
    ("JSON string", '"VICTIM"'),
    ("JSON null", "null"),
    ("ack without id", '{"type":"ack"}'),
    ("ack with a number id", '{"type":"ack","id":1}'),
    ("ack with an object id", '{"type":"ack","id":{"$ne":null}}'),
    ("ack with a wildcard id", '{"type":"ack","id":"%"}'),
    ("ack for someone else's message", '{"type":"ack","id":"VICTIM"}'),
    ("ack for it, shouting, twice", '{"type":"ACK","id":"VICTIM","id":"VICTIM"}'),
    ("unknown type naming the victim", '{"type":"subscribe","sessionId":"SESSION"}'),
    ("lone surrogate", '{"type":"ack","id":"\\ud800"}'),
    ("empty text", ""),
]


def fill_in(garbage: str | bytes, victim: str, message_id: str) -> str | bytes:
    if isinstance(garbage, bytes):
        return garbage.replace(b"VICTIM", message_id.encode()).replace(b"SESSION", victim.encode())
    return garbage.replace("VICTIM", message_id).replace("SESSION", victim)


@pytest.mark.parametrize("same_session", [False, True], ids=["other session", "same session"])
@pytest.mark.parametrize("garbage", [c[1] for c in GARBAGE], ids=[c[0] for c in GARBAGE])
async def test_garbage_frames_neither_break_the_socket_nor_take_anyone_elses_message(
    server: InProcessServer, client: httpx.AsyncClient, garbage: str | bytes, same_session: bool
) -> None:
    victim = new_session_id()
    attacker = victim if same_session else new_session_id()
    async with connect(socket_url(server, victim)) as victims_socket:
        message_id = await send_to(client, victim, "the victim's")
        assert (await next_teaser(victims_socket))["id"] == message_id  # leased to the victim
        async with connect(socket_url(server, attacker)) as attackers_socket:
            await attackers_socket.send(fill_in(garbage, victim, message_id))
            await asyncio.wait_for(await attackers_socket.ping(), 2)  # still served
            await asyncio.sleep(0.05)
            untouched = await status_of(client, message_id)
            if not same_session:
                mine = await send_to(client, attacker, "the attacker's own")
                assert (await next_teaser(attackers_socket))["id"] == mine
        await victims_socket.send(json.dumps({"type": "ack", "id": message_id}))
        await wait_for_status(client, message_id, "delivered")

    assert untouched == "pending"
    assert (await client.get(f"/api/teaser-messages/{message_id}", headers=DEMO_HEADERS)).json()[
        "deliveredVia"
    ] == "websocket"


# --- Tenants: a key of site A never reads or sends for site B ----------------------------------


def crossed(tenants: Tenants, whose_key: str) -> dict[str, str]:
    if whose_key == "A":
        return {"X-API-Key": DEMO_HEADERS["X-API-Key"], "X-Site-ID": SITE_B}
    return {"X-API-Key": tenants.key_b, "X-Site-ID": DEMO_SITE}


@pytest.mark.parametrize("whose_key", ["A", "B"], ids=["A's key for B", "B's key for A"])
@pytest.mark.parametrize("operation", ["send", "bulk send", "status", "erase"])
async def test_a_key_presented_for_another_site_is_401_and_changes_nothing(
    server: InProcessServer,
    client: httpx.AsyncClient,
    tenants: Tenants,
    operation: str,
    whose_key: str,
) -> None:
    owner = tenants.headers_b if whose_key == "A" else DEMO_HEADERS
    theirs = await client.put(
        "/api/teaser-messages",
        headers=owner,
        json={"sessionId": new_session_id(), "message": "theirs"},
    )
    one = {"sessionId": new_session_id(), "message": "mine"}
    requests = {
        "send": ("PUT", "/api/teaser-messages", one),
        "bulk send": ("PUT", "/api/teaser-messages", [one, one]),
        "status": ("GET", f"/api/teaser-messages/{theirs.json()['id']}", None),
        "erase": ("POST", "/api/privacy/erase", {"email": "seed@example.com"}),
    }
    method, path, body = requests[operation]
    before = await snapshot(server)
    response = await client.request(
        method,
        path,
        headers=crossed(tenants, whose_key),
        content=None if body is None else orjson.dumps(body),
    )

    assert (response.status_code, code_of(response)) == (401, "invalid_credentials")
    assert "theirs" not in response.text
    assert diff(before, await snapshot(server)) == {}


async def test_a_sites_own_key_cannot_read_another_sites_message_by_id(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    theirs = await client.put(
        "/api/teaser-messages",
        headers=tenants.headers_b,
        json={"sessionId": new_session_id(), "message": "B's"},
    )
    path = f"/api/teaser-messages/{theirs.json()['id']}"

    as_a, as_b = (
        await client.get(path, headers=DEMO_HEADERS),
        await client.get(path, headers=tenants.headers_b),
    )

    assert (as_a.status_code, code_of(as_a)) == (404, "message_not_found")
    assert (as_b.status_code, as_b.json()["message"]) == (200, "B's")


async def test_a_site_id_in_the_body_cannot_redirect_a_send_to_another_site(
    server: InProcessServer, client: httpx.AsyncClient, tenants: Tenants
) -> None:
    session = new_session_id()
    sent = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": "A's", "siteId": SITE_B},
    )
    at_b = await client.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE_B})
    at_a = await client.post("/api/teaser-messages", json={**WIDGET, "sessionId": session})

    assert (sent.status_code, sent.json()["siteId"]) == (201, DEMO_SITE)
    assert at_b.json()["messages"] == []
    assert [m["id"] for m in at_a.json()["messages"]] == [sent.json()["id"]]


async def test_an_idempotency_key_is_scoped_to_its_site(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = {"sessionId": new_session_id(), "message": "same body, same key"}
    key = {"Idempotency-Key": "order-1234"}
    at_b = await client.put("/api/teaser-messages", headers={**tenants.headers_b, **key}, json=body)
    at_a = await client.put("/api/teaser-messages", headers={**DEMO_HEADERS, **key}, json=body)
    status = await client.get(f"/api/teaser-messages/{at_b.json()['id']}", headers=DEMO_HEADERS)

    assert (at_b.status_code, at_a.status_code) == (201, 201)
    assert "idempotent-replayed" not in at_a.headers
    assert at_a.json()["id"] != at_b.json()["id"] and at_a.json()["siteId"] == DEMO_SITE
    assert status.status_code == 404


async def test_erasing_with_one_sites_key_never_touches_another_sites_visitors(
    server: InProcessServer, client: httpx.AsyncClient, tenants: Tenants
) -> None:
    await client.post(
        "/api/events",
        json={
            **EVENT,
            "siteId": SITE_B,
            "sessionId": new_session_id(),
            "customerEmail": "bob@example.com",
        },
    )
    before = await snapshot(server)
    erased = await client.post(
        "/api/privacy/erase", headers=DEMO_HEADERS, json={"email": "bob@example.com"}
    )

    assert (erased.status_code, erased.json()["sessions"]) == (200, 0)
    assert diff(before, await snapshot(server)) == {}


# --- Query strings of the dashboard's read APIs ------------------------------------------------

READ_APIS = ["/api/stats", "/api/events", "/api/events/export"]
HOSTILE_QUERIES: list[Any] = [
    pytest.param({"filter": "' OR 1=1 --"}, "filter", id="filter SQL"),
    pytest.param({"period": "../../etc"}, "period", id="period path"),
    pytest.param({"q": "x" * 201}, "q", id="q of 201 characters"),
    pytest.param({"since": "-1"}, "since", id="since negative"),
    pytest.param({"since": "1e400"}, "since", id="since 1e400"),
    pytest.param({"since": "10000-01-01T00:00:00Z"}, "since", id="since in year 10000"),
    pytest.param({"since": "9" * 20}, "since", id="since of 20 digits"),
    pytest.param({"since": "³"}, "since", id="since a superscript digit"),
    pytest.param({"until": "٣"}, "until", id="until an Arabic-Indic digit"),
    pytest.param({"until": "9" * 20}, "until", id="until of 20 digits"),
]


@pytest.mark.parametrize("path", READ_APIS)
@pytest.mark.parametrize("query,field", HOSTILE_QUERIES)
async def test_a_hostile_query_on_a_read_api_is_422_naming_it_and_changes_nothing(
    server: InProcessServer, client: httpx.AsyncClient, path: str, query: dict[str, str], field: str
) -> None:
    before = await snapshot(server)
    response = await client.get(path, params=query, headers=DEMO_HEADERS)

    assert (response.status_code, code_of(response)) == (422, "invalid_field")
    assert response.json()["error"]["message"].startswith(field + ":")
    assert diff(before, await snapshot(server)) == {}


# --- Every path parameter and query value, before anything reaches the store ---------------

CONTROL_VALUES: list[Any] = [
    pytest.param("\x00", id="NUL"),
    pytest.param("tm_\x00", id="NUL after text"),
    pytest.param("\x1b[31m", id="ESC"),
    pytest.param("a\x7f", id="DEL"),
    pytest.param("a\r\nSet-Cookie: x=1", id="CR LF"),
]
ODD_VALUES: list[Any] = [
    pytest.param("x" * 10_000, id="10 KB"),
    pytest.param("\ufffd\ud7ff", id="replacement character"),
    pytest.param("../../etc/passwd", id="dot segments"),
    pytest.param("' OR '1'='1", id="SQL"),
    pytest.param("🎉" * 40, id="emoji"),
]
PATHS = [o for o in OPERATIONS if "{" in o.path and not o.path.startswith("/dashboard/assets")]
QUERIES = [
    (o.method, o.path, f.encode_name)
    for o in OPERATIONS
    if o.query
    for f in structs.fields(o.query)
]


def with_parameter(template: str, value: str) -> str:
    return re.sub(r"\{\w+\}", quote(value, safe=""), template)


@pytest.mark.parametrize("value", CONTROL_VALUES)
@pytest.mark.parametrize("method,template", [(o.method, o.path) for o in PATHS])
async def test_a_control_character_in_a_path_parameter_is_422_naming_it(
    server: InProcessServer, client: httpx.AsyncClient, method: str, template: str, value: str
) -> None:
    before = await snapshot(server)
    url = with_parameter(template, value)
    response = await client.request(method, url, headers=DEMO_HEADERS)

    name = re.findall(r"\{(\w+)\}", template)[0]  # of several, the first is read first
    assert (response.status_code, code_of(response)) == (422, "invalid_field")
    assert response.json()["error"]["message"].startswith(f"{name}:")
    assert diff(before, await snapshot(server)) == {}


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("method,template", [(o.method, o.path) for o in PATHS])
async def test_any_other_path_parameter_is_answered_4xx_and_changes_nothing(
    server: InProcessServer, client: httpx.AsyncClient, method: str, template: str, value: str
) -> None:
    before = await snapshot(server)
    url = with_parameter(template, value)
    response = await client.request(method, url, headers=DEMO_HEADERS)

    assert response.status_code in (404, 422), response.text
    assert code_of(response)
    assert diff(before, await snapshot(server)) == {}


@pytest.mark.parametrize("value", CONTROL_VALUES)
@pytest.mark.parametrize("method,path,name", QUERIES, ids=[f"{m} {p}?{n}" for m, p, n in QUERIES])
async def test_a_control_character_in_any_query_value_is_422_naming_it(
    server: InProcessServer,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    name: str,
    value: str,
) -> None:
    before = await snapshot(server)
    response = await client.request(method, path, params={name: value}, headers=DEMO_HEADERS)

    assert (response.status_code, code_of(response)) == (422, "invalid_field")
    assert response.json()["error"]["message"].startswith(f"{name}:")
    assert diff(before, await snapshot(server)) == {}


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("method,path,name", QUERIES, ids=[f"{m} {p}?{n}" for m, p, n in QUERIES])
async def test_any_other_query_value_is_answered_whole_and_changes_nothing(
    server: InProcessServer,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    name: str,
    value: str,
) -> None:
    """Refused with 422, or answered in full: never a 500, never an answer cut short."""
    before = await snapshot(server)
    response = await client.request(method, path, params={name: value}, headers=DEMO_HEADERS)

    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert code_of(response) == "invalid_field"
    assert diff(before, await snapshot(server)) == {}


# Each socket, a good query for it, and the contract type its query is read into.
SOCKETS: dict[str, tuple[dict[str, str], Any]] = {
    "/api/teaser-ws": ({**WIDGET, "sessionId": new_session_id()}, WidgetRequest),
    "/api/dashboard/ws": ({}, ViewQuery),
}
SOCKET_QUERIES = [
    (p, f.encode_name) for p, (_, kind) in SOCKETS.items() for f in structs.fields(kind)
]


@pytest.mark.parametrize("value", CONTROL_VALUES)
@pytest.mark.parametrize("path,name", SOCKET_QUERIES, ids=[f"{p}?{n}" for p, n in SOCKET_QUERIES])
async def test_a_control_character_in_a_socket_query_is_refused_before_the_upgrade(
    server: InProcessServer, path: str, name: str, value: str
) -> None:
    query = {**SOCKETS[path][0], name: value}
    url = f"{server.ws_url}{path}?{urlencode(query)}"
    before = await snapshot(server)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=DEMO_HEADERS):
            pass

    assert refused.value.response.status_code == 422
    assert diff(before, await snapshot(server)) == {}
