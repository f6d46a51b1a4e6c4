"""PUT/POST /api/teaser-messages, GET /api/teaser-messages/{id}, WebSocket /api/teaser-ws."""

from __future__ import annotations

import hashlib
from functools import partial

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from api.auth import address_key, client_address, runtime_of, sending_site, widget_site
from api.httpprotocol import CLIENT_GONE
from api.limits import read_body
from api.responses import StructResponse
from api.sockets import DATABASE_AWAY, database_away, refuse
from realtime.accounts import new_session_id
from realtime.contract import (
    BulkSent,
    PollAnswer,
    PollRequest,
    SendBody,
    SentTeaser,
    SessionOpened,
    SessionRequest,
    TeaserState,
    WidgetRequest,
    decode_json,
    drafts_from,
    encode,
    from_strings,
    path_value,
)
from realtime.delivery import ClientTeaser, Draft, IdempotencyKey, LiveConnection, client_frame
from realtime.platform import InvalidInput, NotFound, TeaserError


async def teaser_messages(request: Request) -> Response:
    """PUT sends, POST polls. A plain function: an endpoint class costs an instance and a
    method lookup per request, on the hottest path there is."""
    return await (send_teasers if request.method == "PUT" else poll_teasers)(request)


async def send_teasers(request: Request) -> Response:
    runtime = runtime_of(request)
    site = await sending_site(request)
    body = await request.body()
    sent: SendBody = decode_json(body, SendBody)  # type: ignore[arg-type]  # a union
    drafts, bulk = drafts_from(sent, runtime.settings.max_message_length)
    runtime.limits.sends.take(site.id, cost=len(drafts))
    idempotency = idempotency_key(request.headers.get("idempotency-key"), drafts, bulk)
    done = await runtime.delivery.send_once(site.id, drafts, idempotency)
    now = runtime.store.clock()
    created = [SentTeaser.of(teaser, now) for teaser in done.teasers]
    headers = {"Idempotent-Replayed": "true"} if done.replayed else None
    return StructResponse(BulkSent(created) if bulk else created[0], 201, headers)


def idempotency_key(header: str | None, drafts: list[Draft], bulk: bool) -> IdempotencyKey | None:
    """The key, with a digest of what was asked: of the drafts, not of the body's bytes, so
    a retry whose JSON is spaced, ordered or numbered differently (5000 or 5000.0) is the
    same request, and only a retry that asks for something else is a conflict."""
    if header is None:
        return None
    if not 1 <= len(header) <= 200 or not header.isprintable():
        raise InvalidInput("Idempotency-Key", "must be 1-200 printable characters")
    return IdempotencyKey(header, hashlib.sha256(encode([bulk, drafts])).hexdigest())


async def poll_teasers(request: Request) -> Response:
    runtime = runtime_of(request)
    client = request.scope.get("client")
    address = address_key(client[0] if client else "unknown")
    runtime.limits.polls_per_ip.take(address)
    asked = decode_json(await read_body(request), PollRequest)
    site = await widget_site(runtime, request, asked.site_id)
    runtime.session_tokens.check(site.id, asked.session_id, asked.token)
    runtime.limits.polls_per_session.take(f"{site.id}:{asked.session_id}")
    # Held for what was asked, up to the server's own bound; past the address's quota of
    # held polls, answered at once like a plain poll (the answer then says `wait` 0).
    wait = min(int(asked.wait) / 1000, runtime.settings.long_poll_seconds)
    quota = runtime.limits.held_polls_per_ip
    holding = wait > 0 and quota.try_acquire(address)
    try:
        result = await runtime.delivery.poll(
            site.id,
            asked.session_id,
            asked.path,
            asked.since,
            wait if holding else 0,
            on_hold=partial(request.scope.__setitem__, CLIENT_GONE),
        )
    finally:
        if holding:
            quota.release(address)
    return StructResponse(
        PollAnswer(
            [ClientTeaser.of(teaser) for teaser in result.teasers],
            runtime.settings.poll_interval_ms,
            result.recovered,
            result.wait_ms,
        )
    )


async def open_session(request: Request) -> Response:
    """POST /api/sessions: a new visitor session id and the token that reads it."""
    runtime = runtime_of(request)
    asked = decode_json(await request.body(), SessionRequest)
    site = await widget_site(runtime, request, asked.site_id)
    runtime.limits.sessions_per_ip.take(client_address(request))
    session_id = new_session_id()
    token = runtime.session_tokens.issue(site.id, session_id)
    return StructResponse(
        SessionOpened(session_id, token, runtime.settings.poll_interval_ms), status_code=201
    )


async def end_session(request: Request) -> Response:
    """DELETE /api/sessions/{session_id}: the site ends a visitor session; every token it
    was given stops working (the widget then opens a new session)."""
    runtime = runtime_of(request)
    site = await sending_site(request)
    session_id = path_value(request.path_params, "session_id")
    await runtime.visitor_revocations.revoke([(site.id, session_id)])
    return Response(status_code=204)


async def teaser_message(request: Request) -> Response:
    runtime = runtime_of(request)
    site = await sending_site(request)
    teaser = await runtime.store.get(site.id, path_value(request.path_params, "message_id"))
    if teaser is None:
        raise NotFound("no such teaser message for this site", code="message_not_found")
    return StructResponse(TeaserState.of(teaser, runtime.store.clock()))


async def teaser_socket(websocket: WebSocket) -> None:
    runtime = runtime_of(websocket)
    # The handshake is read through a connection object of its own: the headers and query
    # it parses then go with it, instead of staying cached on the socket for its lifetime.
    handshake = HTTPConnection(websocket.scope)
    address = client_address(handshake)
    try:
        asked = from_strings(handshake.query_params.multi_items(), WidgetRequest)
        site = await widget_site(runtime, handshake, asked.site_id)
        runtime.session_tokens.check(site.id, asked.session_id, asked.token)
        runtime.limits.sockets_per_ip.acquire(address)
    except TeaserError as exc:
        await refuse(websocket, exc)
        return
    except Exception as exc:
        if not database_away(exc):
            raise
        await refuse(websocket, DATABASE_AWAY)
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
        raw = message.get("text") or message.get("bytes")
        if raw:
            await connection.heard(client_frame(raw))
