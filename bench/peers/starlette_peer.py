"""The bare baseline: a Starlette WebSocket push endpoint with no database and no broker.

It speaks Teaser's wire protocol (same paths, bodies and frames) so the load client is the
same; a send writes straight to the sockets held in this process. The poll answers what an
idle Teaser poll answers. Run: uvicorn bench.peers.starlette_peer:app
"""

from __future__ import annotations

import hmac
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.peers.wire import API_KEY, SITE_ID, drafts, stored

sockets: dict[str, set[WebSocket]] = {}


async def send(request: Request) -> Response:
    if not hmac.compare_digest(request.headers.get("x-api-key", ""), API_KEY):
        return JSONResponse({"error": {"code": "invalid_credentials"}}, status_code=401)
    parsed = drafts(await request.json())
    if parsed is None:
        return JSONResponse({"error": {"code": "invalid_field"}}, status_code=422)
    items, bulk = parsed
    created = [stored(item) for item in items]
    for teaser in created:
        frame = json.dumps({"type": "teaser", **teaser})
        for websocket in list(sockets.get(teaser["sessionId"], ())):
            await websocket.send_text(frame)
    return JSONResponse({"messages": created} if bulk else created[0], status_code=201)


async def poll(request: Request) -> Response:
    body = await request.json()
    if not isinstance(body, dict) or body.get("siteId") != SITE_ID:
        return JSONResponse({"error": {"code": "unknown_site"}}, status_code=401)
    return JSONResponse({"messages": [], "pollInterval": 8000})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "openSockets": sum(map(len, sockets.values()))})


async def session_socket(websocket: WebSocket) -> None:
    session_id = websocket.query_params.get("sessionId", "")
    await websocket.accept()
    held = sockets.setdefault(session_id, set())
    held.add(websocket)
    try:
        while True:
            await websocket.receive_text()  # acks and pongs: nothing to store
    except WebSocketDisconnect:
        pass
    finally:
        held.discard(websocket)
        if not held:
            sockets.pop(session_id, None)


app = Starlette(
    routes=[
        Route("/api/teaser-messages", send, methods=["PUT"]),
        Route("/api/teaser-messages", poll, methods=["POST"]),
        Route("/healthz", healthz),
        WebSocketRoute("/api/teaser-ws", session_socket),
    ]
)
