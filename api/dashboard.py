"""The operator dashboard: its pages, and the APIs it (or a script with the site's key)
reads and sends through. Every answer is about the caller's own site only."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from api.auth import runtime_of
from api.dashboard_socket import dashboard_socket
from api.operator_auth import dashboard_principal, login, logout, me, session_principal
from api.resources import on_disk
from api.responses import FastJSONResponse, StructResponse
from dashboard import FILES
from realtime.contract import (
    DashboardSendRequest,
    ExportQuery,
    FeedQuery,
    TeaserState,
    ViewQuery,
    WordingChoices,
    decode_json,
    from_strings,
    path_value,
)
from realtime.insight import Cursor
from realtime.platform import NotFound

DASHBOARD_DIR = on_disk(FILES)
# Pages make no request to anything but this server, and no other site may frame them.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CSV_COLUMNS = (
    "kind",
    "id",
    "at",
    "sessionId",
    "type",
    "path",
    "url",
    "title",
    "referrer",
    "utmSource",
    "utmCampaign",
    "customerId",
    "customerEmail",
    "secondsOnPage",
    "teaserId",
    "value",
    "score",
    "aiTriggered",
    "triggeredTeaserId",
    "variant",
    "heldOut",
    "message",
    "priority",
    "status",
    "deliveredVia",
    "deliveredAt",
    "expiresAt",
    "utm",
    "explanation",
)
# The session's facts now (a row's `visitor`), one column each: visitorUtmSource, ...
VISITOR_FIELDS = (
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "customerId",
    "customerEmail",
    "timeZone",
    "firstSeen",
)
VISITOR_COLUMNS = tuple("visitor" + name[0].upper() + name[1:] for name in VISITOR_FIELDS)
# A spreadsheet runs a cell that starts like a formula; visitors write page titles and paths.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


async def dashboard_page(request: Request) -> Response:
    if await session_principal(request) is None:
        return RedirectResponse("/dashboard/login", status_code=303)
    return _page("index.html")


async def login_page(request: Request) -> Response:
    return _page("login.html")


def _page(name: str) -> Response:
    return FileResponse(
        DASHBOARD_DIR / name, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
    )


async def stats(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    view = from_strings(request.query_params.multi_items(), ViewQuery).view(runtime.store.clock())
    return FastJSONResponse(await runtime.analytics.stats(principal.site_id, view))


async def list_events(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    asked = from_strings(request.query_params.multi_items(), FeedQuery)
    before = Cursor.parse(asked.before) if asked.before else None
    view = asked.view(runtime.store.clock())
    page = await runtime.analytics.feed(principal.site_id, view, before, asked.limit)
    return FastJSONResponse({"events": page.items, "next": page.next})


async def export_events(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    asked = from_strings(request.query_params.multi_items(), ExportQuery)
    view, kind = asked.view(runtime.store.clock()), asked.format
    rows = runtime.analytics.export(principal.site_id, view)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"teaser-{principal.site_id}-{view.filter.value}-{stamp}.{kind}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if kind == "csv":
        return StreamingResponse(
            _csv_lines(rows), media_type="text/csv; charset=utf-8", headers=headers
        )
    return StreamingResponse(_json_lines(rows), media_type="application/json", headers=headers)


async def _json_lines(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    separator = b"[\n"
    async for row in rows:
        yield separator + orjson.dumps(row)
        separator = b",\n"
    yield b"[]\n" if separator == b"[\n" else b"\n]\n"


async def _csv_lines(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS + VISITOR_COLUMNS)
    async for row in rows:
        visitor: dict[str, Any] = row.get("visitor") or {}
        writer.writerow(
            [_csv_cell(row.get(column)) for column in CSV_COLUMNS]
            + [_csv_cell(visitor.get(name)) for name in VISITOR_FIELDS]
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


async def session_journey(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    session_id = path_value(request.path_params, "session_id")
    return FastJSONResponse(await runtime.journeys.journey(principal.site_id, session_id))


async def session_wordings(request: Request) -> Response:
    """Compose's "Start from a wording": every template's wordings, filled in for the session."""
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    session_id = path_value(request.path_params, "session_id")
    found = await runtime.wordings.for_session(principal.site_id, session_id)
    return StructResponse(WordingChoices.of(found))


async def conversions(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    asked = from_strings(request.query_params.multi_items(), ViewQuery)
    now = runtime.store.clock()
    view = asked.view(now)
    # "all" with no since is every teaser ever shown; no period at all is the last week.
    whole = asked.period == "all" and view.since is None
    window = runtime.rulebook.for_site(principal.site_id).attribution_window_minutes
    # The period ends at the `now` it began from: a clock read again a millisecond later
    # made "the last 24 hours" a day and a millisecond long, and so bucketed by day.
    until = now if view.until is None else view.until
    report = await runtime.conversions.analyse(
        principal.site_id, view.since, until, whole=whole, window_minutes=window
    )
    return FastJSONResponse(report)


async def send_teaser(request: Request) -> Response:
    """📨 Send Custom Teaser: always manual, always to the caller's own site."""
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    asked = decode_json(await request.body(), DashboardSendRequest)
    draft = asked.draft(runtime.settings.max_message_length)
    [teaser] = await runtime.delivery.send(principal.site_id, [draft])
    return StructResponse(TeaserState.of(teaser, runtime.store.clock()), status_code=201)


async def teaser_state(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await dashboard_principal(request)
    teaser = await runtime.store.get(
        principal.site_id, path_value(request.path_params, "message_id")
    )
    if teaser is None:
        raise NotFound("no such teaser message for this site", code="message_not_found")
    return StructResponse(TeaserState.of(teaser, runtime.store.clock()))


routes: list[BaseRoute] = [
    Route("/dashboard", dashboard_page),
    Route("/dashboard/login", login_page),
    Mount("/dashboard/assets", app=StaticFiles(packages=[("dashboard", "assets")])),
    Route("/api/operator/login", login, methods=["POST"]),
    Route("/api/operator/logout", logout, methods=["POST"]),
    Route("/api/operator/me", me),
    Route("/api/stats", stats),
    # POST /api/events (the widget's intake) is a route of its own, in api.events.
    Route("/api/events", list_events, methods=["GET"]),
    Route("/api/events/export", export_events),
    Route("/api/dashboard/sessions/{session_id}", session_journey),
    Route("/api/dashboard/sessions/{session_id}/wordings", session_wordings),
    Route("/api/dashboard/conversions", conversions),
    Route("/api/dashboard/teasers", send_teaser, methods=["POST"]),
    Route("/api/dashboard/teasers/{message_id}", teaser_state),
    WebSocketRoute("/api/dashboard/ws", dashboard_socket),
]
