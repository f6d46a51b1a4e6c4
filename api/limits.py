"""Refuse bodies over the limit with the usual JSON error: at once when Content-Length says
so (nothing is read), else as soon as the streamed bytes pass it."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
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
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
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
