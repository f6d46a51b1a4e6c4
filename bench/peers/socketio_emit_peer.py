"""The least a team would build with python-socketio ("emit-and-forget"): an HTTP endpoint
that takes Teaser's send body and emits `{"id", "message"}` to the session's room. No acks
come back, nothing is kept, the answer is the ids. Its clients hold their sockets and count
what arrives, and do not ack.

With BENCH_REDIS_URL set it uses AsyncRedisManager, as the same-wire peer does.
Run: uvicorn bench.peers.socketio_emit_peer:app
"""

from __future__ import annotations

import hmac
import uuid

import socketio  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.peers.socketio_base import session_server
from bench.peers.wire import API_KEY, drafts

sio = session_server()


async def send(request: Request) -> Response:
    # The key check and the shape check stay: an endpoint without them is not one a team
    # would put on the internet, and they cost little next to an emit.
    if not hmac.compare_digest(request.headers.get("x-api-key", ""), API_KEY):
        return JSONResponse({"error": {"code": "invalid_credentials"}}, status_code=401)
    parsed = drafts(await request.json())
    if parsed is None:
        return JSONResponse({"error": {"code": "invalid_field"}}, status_code=422)
    items, bulk = parsed
    ids = []
    for item in items:
        message_id = uuid.uuid4().hex
        ids.append(message_id)
        payload = {"id": message_id, "message": item["message"]}
        await sio.emit("teaser", payload, room=item["sessionId"])
    return JSONResponse({"ids": ids} if bulk else {"id": ids[0]}, status_code=201)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


http = Starlette(
    routes=[Route("/api/teaser-messages", send, methods=["PUT"]), Route("/healthz", healthz)]
)
app = socketio.ASGIApp(sio, other_asgi_app=http)
