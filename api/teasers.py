"""PUT/POST /api/teaser-messages, GET /api/teaser-messages/{id}, WebSocket /api/teaser-ws."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.auth import client_address, runtime_of, sending_site, widget_site
from api.responses import FastJSONResponse
from api.schemas import (
    drafts_from_send,
    idempotency_key,
    parse_json,
    poll_request,
    teaser_created,
    teaser_status,
    widget_request,
)
from api.sockets import json_frame, refuse
from realtime.accounts import new_session_id
from realtime.delivery import LiveConnection, client_fields
from realtime.platform import InvalidInput, NotFound, TeaserError, check_site_id


async def teaser_messages(request: Request) -> Response:
    """PUT sends, POST polls. A plain function: an endpoint class costs an instance and a
    method lookup per request, on the hottest path there is."""
    return await (send_teasers if request.method == "PUT" else poll_teasers)(request)


async def send_teasers(request: Request) -> Response:
    runtime = runtime_of(request)
    site = await sending_site(request)
    body = await request.body()
    drafts, bulk = drafts_from_send(parse_json(body), runtime.settings.max_message_length)
    runtime.limits.sends.take(site.id, cost=len(drafts))
    idempotency = idempotency_key(request.headers.get("idempotency-key"), body)
    sent = await runtime.delivery.send_once(site.id, drafts, idempotency)
    now = runtime.store.clock()
    created = [teaser_created(teaser, now) for teaser in sent.teasers]
    headers = {"Idempotent-Replayed": "true"} if sent.replayed else None
    return FastJSONResponse(
        {"messages": created} if bulk else created[0], status_code=201, headers=headers
    )


async def poll_teasers(request: Request) -> Response:
    runtime = runtime_of(request)
    runtime.limits.polls_per_ip.take(client_address(request))
    asked = poll_request(parse_json(await request.body()))
    site = await widget_site(request, asked.site_id)
    runtime.session_tokens.check(site.id, asked.session_id, asked.token)
    runtime.limits.polls_per_session.take(f"{site.id}:{asked.session_id}")
    result = await runtime.delivery.poll(site.id, asked.session_id, asked.path, asked.since)
    body = {
        "messages": [client_fields(teaser) for teaser in result.teasers],
        "pollInterval": runtime.settings.poll_interval_ms,
    }
    if result.recovered is not None:
        body["recovered"] = result.recovered
    return FastJSONResponse(body)


async def open_session(request: Request) -> Response:
    """POST /api/sessions: a new visitor session id and the token that reads it."""
    runtime = runtime_of(request)
    payload = parse_json(await request.body())
    if not isinstance(payload, dict):
        raise InvalidInput("body", "must be a JSON object")
    site = await widget_site(request, check_site_id(payload.get("siteId")))
    runtime.limits.sessions_per_ip.take(client_address(request))
    session_id = new_session_id()
    return FastJSONResponse(
        {
            "sessionId": session_id,
            "token": runtime.session_tokens.issue(site.id, session_id),
            "pollInterval": runtime.settings.poll_interval_ms,
        },
        status_code=201,
    )


async def teaser_message(request: Request) -> Response:
    runtime = runtime_of(request)
    site = await sending_site(request)
    teaser = await runtime.store.get(site.id, request.path_params["message_id"])
    if teaser is None:
        raise NotFound("no such teaser message for this site", code="message_not_found")
    return FastJSONResponse(teaser_status(teaser, runtime.store.clock()))


async def teaser_socket(websocket: WebSocket) -> None:
    runtime = runtime_of(websocket)
    # The handshake is read through a connection object of its own: the headers and query
    # it parses then go with it, instead of staying cached on the socket for its lifetime.
    handshake = HTTPConnection(websocket.scope)
    address = client_address(handshake)
    try:
        asked = widget_request(handshake.query_params)
        site = await widget_site(handshake, asked.site_id)
        runtime.session_tokens.check(site.id, asked.session_id, asked.token)
        runtime.limits.sockets_per_ip.acquire(address)
    except TeaserError as exc:
        await refuse(websocket, exc)
        return
    del handshake
    try:
        await websocket.accept()
        # The handshake's header lines would otherwise stay in the scope for the socket's
        # whole life; nothing reads them once it is open.
        websocket.scope["headers"] = []
        hub = runtime.hub
        connection = await hub.attach(site.id, asked.session_id, websocket, asked.path, asked.since)
        try:
            await _listen(websocket, connection)
        finally:
            await hub.detach(connection)
    finally:
        runtime.limits.sockets_per_ip.release(address)


async def _listen(websocket: WebSocket, connection: LiveConnection) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = json_frame(message)
        if frame is not None:
            await connection.heard(frame)
