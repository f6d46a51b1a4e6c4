"""What a team would otherwise build, carrying what Teaser carries ("same-wire"):
python-socketio's AsyncServer on uvicorn, one room per visitor session, a targeted emit of
the whole stored message from an HTTP endpoint that takes Teaser's send body and answers as
Teaser does, and the clients' acks received.

With BENCH_REDIS_URL set it uses AsyncRedisManager, so an emit on one worker reaches a
socket on another (the scale-out scenario). Run: uvicorn bench.peers.socketio_peer:app
"""

from __future__ import annotations

import hmac
from typing import Any

import socketio  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.peers.socketio_base import session_server
from bench.peers.wire import API_KEY, drafts, stored

sio = session_server()


@sio.event  # type: ignore[untyped-decorator]
async def ack(sid: str, message_id: Any) -> None:
    """Teaser's clients ack every message; here the ack is received and dropped."""


async def send(request: Request) -> Response:
    if not hmac.compare_digest(request.headers.get("x-api-key", ""), API_KEY):
        return JSONResponse({"error": {"code": "invalid_credentials"}}, status_code=401)
    parsed = drafts(await request.json())
    if parsed is None:
        return JSONResponse({"error": {"code": "invalid_field"}}, status_code=422)
    items, bulk = parsed
    created = [stored(item) for item in items]
    for teaser in created:
        await sio.emit("teaser", teaser, room=teaser["sessionId"])
    return JSONResponse({"messages": created} if bulk else created[0], status_code=201)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


http = Starlette(
    routes=[Route("/api/teaser-messages", send, methods=["PUT"]), Route("/healthz", healthz)]
)
app = socketio.ASGIApp(sio, other_asgi_app=http)
