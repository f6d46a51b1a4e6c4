"""What every WebSocket endpoint here does alike: refuse an upgrade, tell a database
outage from a bug; and the shortcut that serves the session socket past the HTTP
middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from api.errors import status_for
from api.responses import error_response
from realtime.delivery import CloseCode
from realtime.platform import StoreUnavailable, TeaserError, is_disconnect

# The refusal of an upgrade that met the database away: a 503, as an HTTP call gets.
DATABASE_AWAY = StoreUnavailable(
    "the database is unreachable; try again shortly", code="database_unavailable"
)


def database_away(exc: BaseException) -> bool:
    """An outage of the database (a socket waits it out), not a bug (which ends it)."""
    return isinstance(exc, StoreUnavailable) or is_disconnect(exc)


async def refuse(websocket: WebSocket, exc: TeaserError) -> None:
    """Answer the upgrade with the same JSON error an HTTP call would get, where the
    server supports it; a browser only sees the socket fail (and the widget falls back)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = error_response(status_for(exc), exc.code, exc.message)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=CloseCode.POLICY_VIOLATION, reason=exc.code)


class DirectSocket:
    """Serve one WebSocket path from the top of the middleware stack. The HTTP middleware
    below (CORS, body limits, exception pages, routing) does nothing for it, yet each layer
    would be a coroutine frame kept as long as the socket lives: with thousands of idle
    sockets, memory for nothing. Other paths, and this one under a root path, go on down
    to the router, which serves the same endpoint."""

    def __init__(
        self, app: ASGIApp, path: str, endpoint: Callable[[WebSocket], Awaitable[None]]
    ) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: it hands back the one it picks, so it adds no frame to
        # the chain that every await of the request (or socket) resumes through.
        if scope["type"] == "websocket" and scope["path"] == self.path:
            return self.endpoint(WebSocket(scope, receive, send))
        return self.app(scope, receive, send)
