"""CORS for the endpoints shop pages call from their own origin. Which origins may actually
use a site is decided per request (api.auth.widget_site); this only lets the browser read
the answer, including a 403 that says why."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFLIGHT_MAX_AGE = "600"
ALLOW_ORIGIN = b"access-control-allow-origin"
EXPOSE_HEADERS = b"access-control-expose-headers"
# So the widget can wait as long as a 429 or 503 asks, not guess.
EXPOSED = b"Retry-After"


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
            return self._preflight(origin.decode("latin-1"))(scope, receive, send)

        def send_with_cors(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message["headers"] = with_cors(message.get("headers", ()), origin)
            return send(message)

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


def with_cors(headers: Iterable[tuple[bytes, bytes]], origin: bytes) -> list[tuple[bytes, bytes]]:
    """An answer's headers as starlette's MutableHeaders would leave them after setting the
    two CORS headers and adding Origin to Vary (any of them already there replaced, every
    Vary's value kept before Origin, in one), built in one pass: through MutableHeaders,
    they cost a fifth of an idle poll from a shop's page."""
    kept: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    for name, value in headers:
        if name == b"vary":
            vary.append(value)
        elif name != ALLOW_ORIGIN and name != EXPOSE_HEADERS:
            kept.append((name, value))
    vary.append(b"Origin")
    kept += [(ALLOW_ORIGIN, origin), (EXPOSE_HEADERS, EXPOSED), (b"vary", b", ".join(vary))]
    return kept


def _origin(scope: Scope) -> bytes | None:
    # Looked up in the scope's own list: starlette's Headers would copy the list first, on
    # every request. Servers give header names in lower case (ASGI), as Headers assumes too.
    for name, value in scope["headers"]:
        if name == b"origin":
            return value  # type: ignore[no-any-return]
    return None
