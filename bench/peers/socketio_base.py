"""What both python-socketio peers share: the AsyncServer, on AsyncRedisManager when
BENCH_REDIS_URL is set (so an emit on one worker reaches a socket on another), and one room
per visitor session, joined on connect."""

from __future__ import annotations

import os
from typing import Any

import socketio  # type: ignore[import-untyped]


def _manager() -> socketio.AsyncManager | None:
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        return None
    # A channel of its own: the Redis server is shared with test suites running meanwhile.
    channel = os.environ.get("BENCH_SOCKETIO_CHANNEL", "bench-socketio")
    return socketio.AsyncRedisManager(url, channel=channel)


def session_server() -> socketio.AsyncServer:
    """An AsyncServer whose clients join the room of the session they name on connect."""
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

    return sio
