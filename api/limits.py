"""Refuse bodies over the limit with the usual JSON error: at once when Content-Length says
so (nothing is read), else as soon as the streamed bytes pass it."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import error_response

MAX_BODY_BYTES = 16 * 1024
# Bulk sends are authenticated and may carry up to 1000 full-length messages.
MAX_SEND_BODY_BYTES = 1024 * 1024


class BodyLimitMiddleware:
    """`max_bytes` for every body, except the (method, path) pairs given larger limits."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: dict[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    # Not a coroutine itself: it hands back the one it picks (see api.sockets.DirectSocket).
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        limit = self.larger.get((scope["method"], scope["path"]), self.max_bytes)
        if _declared_length(scope) > limit:
            return self._too_large(limit)(scope, receive, send)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, detail=f"request body is larger than {limit} bytes")
            return message

        return self.app(scope, limited_receive, send)

    @staticmethod
    def _too_large(limit: int) -> ASGIApp:
        return error_response(
            413, "payload_too_large", f"request body is larger than {limit} bytes"
        )


def _declared_length(scope: Scope) -> int:
    """Content-Length, or -1 without a sane one. Read from the scope's own list: starlette's
    Headers would copy the list first, on every request."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1  # bytes: ASCII digits only
    return -1


async def read_body(request: Request) -> bytes:
    """The whole body, as `await request.body()` reads it (ClientDisconnect if the client
    goes away first), without the async generator and its closing that Request.stream()
    costs: a twentieth of an idle poll. Read once: it is not kept on the request."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
