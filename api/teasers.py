"""PUT/POST /api/teaser-messages, GET /api/teaser-messages/{id}, WebSocket /api/teaser-ws."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.auth import runtime_of, sending_site, widget_site
from api.errors import status_for
from api.responses import FastJSONResponse, error_response
from api.schemas import (
    drafts_from_send,
    parse_json,
    poll_request,
    polled,
    teaser_created,
    teaser_status,
)
from realtime.errors import NotFound, TeaserError
from realtime.teaser import check_current_path, check_session_id, check_site_id

POLICY_VIOLATION = 1008


class TeaserMessages(HTTPEndpoint):
    async def put(self, request: Request) -> Response:
        runtime = runtime_of(request)
        site = await sending_site(request)
        payload = parse_json(await request.body())
        drafts, bulk = drafts_from_send(payload, runtime.settings.max_message_length)
        teasers = await runtime.delivery.send(site.id, drafts)
        now = runtime.store.clock()
        created = [teaser_created(teaser, now) for teaser in teasers]
        return FastJSONResponse({"messages": created} if bulk else created[0], status_code=201)

    async def post(self, request: Request) -> Response:
        runtime = runtime_of(request)
        site_id, session_id, path = poll_request(parse_json(await request.body()))
        site = await widget_site(request, site_id)
        teasers = await runtime.delivery.poll(site.id, session_id, path)
        return FastJSONResponse(
            {
                "messages": [polled(teaser) for teaser in teasers],
                "pollInterval": runtime.settings.poll_interval_ms,
            }
        )


class TeaserMessage(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        runtime = runtime_of(request)
        site = await sending_site(request)
        teaser = await runtime.store.get(site.id, request.path_params["message_id"])
        if teaser is None:
            raise NotFound("no such teaser message for this site", code="message_not_found")
        return FastJSONResponse(teaser_status(teaser, runtime.store.clock()))


async def teaser_socket(websocket: WebSocket) -> None:
    runtime = runtime_of(websocket)
    try:
        site_id = check_site_id(websocket.query_params.get("siteId"))
        session_id = check_session_id(websocket.query_params.get("sessionId"))
        path = check_current_path(websocket.query_params.get("path"))
        site = await widget_site(websocket, site_id)
    except TeaserError as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    async with runtime.hub.attach(site.id, session_id, websocket, path) as connection:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = _frame(message)
            if frame is not None:
                await connection.heard(frame)


def _frame(message: MutableMapping[str, Any]) -> dict[str, Any] | None:
    raw = message.get("text") or message.get("bytes")
    if not raw:
        return None
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, dict) else None


async def _refuse(websocket: WebSocket, exc: TeaserError) -> None:
    """Answer the upgrade with the same JSON error an HTTP call would get, where the
    server supports it; a browser only sees the socket fail, and falls back to polling."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = error_response(status_for(exc), exc.code, exc.message)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=POLICY_VIOLATION, reason=exc.code)
