"""What a team would otherwise build: python-socketio's AsyncServer on uvicorn, one room per
visitor session, and a targeted emit from an HTTP endpoint that takes Teaser's send body.

With BENCH_REDIS_URL set it uses AsyncRedisManager, so an emit on one worker reaches a
socket on another (the scale-out scenario). Run: uvicorn bench.peers.socketio_peer:app
"""

from __future__ import annotations

import hmac
import os
from typing import Any

import socketio  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.peers.wire import API_KEY, drafts, stored


def _manager() -> socketio.AsyncManager | None:
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        return None
    # A channel of its own: the Redis server is shared with test suites running meanwhile.
    channel = os.environ.get("BENCH_SOCKETIO_CHANNEL", "bench-socketio")
    return socketio.AsyncRedisManager(url, channel=channel)


# WebSocket only, like Teaser's socket path; the long-polling fallback is not measured.
sio = socketio.AsyncServer(
    async_mode="asgi", transports=["websocket"], client_manager=_manager(), logger=False
)


@sio.event  # type: ignore[untyped-decorator]
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
    session_id = auth.get("sessionId") if isinstance(auth, dict) else None
    if not isinstance(session_id, str) or not session_id:
        return False
    await sio.enter_room(sid, session_id)
    return True


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
