"""CORS for the endpoints shop pages call from their own origin. Which origins may actually
use a site is decided per request (api.auth.widget_site); this only lets the browser read
the answer, including a 403 that says why."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFLIGHT_MAX_AGE = "600"


class WidgetCORSMiddleware:
    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    # Not a coroutine itself: it hands back the one it picks (see api.sockets.DirectSocket).
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return self.app(scope, receive, send)
        origin = _origin(scope)
        if origin is None:
            return self.app(scope, receive, send)
        if scope["method"] == "OPTIONS":
            return self._preflight(origin)(scope, receive, send)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Access-Control-Allow-Origin"] = origin
                # So the widget can wait as long as a 429 or 503 asks, not guess.
                headers["Access-Control-Expose-Headers"] = "Retry-After"
                headers.add_vary_header("Origin")
            await send(message)

        return self.app(scope, receive, send_with_cors)

    @staticmethod
    def _preflight(origin: str) -> Response:
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            },
        )


def _origin(scope: Scope) -> str | None:
    # Looked up in the scope's own list: starlette's Headers would copy the list first, on
    # every request. Servers give header names in lower case (ASGI), as Headers assumes too.
    for name, value in scope["headers"]:
        if name == b"origin":
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None
