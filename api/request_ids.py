"""A request id for every HTTP request and WebSocket, for the logs: the caller's own
X-Request-ID when it is sane, else a new one, echoed on the HTTP response."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
# What proxies and clients send: nginx's $request_id (32 hex digits), a UUID, a trace id.
# It goes into every log line of the request and back out in a header, so only short
# and plain ones are taken; anything else is replaced, not cleaned.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+=/-]{1,64}")


# The request (or socket) the running task serves: its id, and since when (time.time(),
# the clock of a LogRecord's `created`: an access line's duration is the difference). Two
# variables, not one named tuple: building the tuple cost more than both sets together.
REQUEST_ID: ContextVar[str | None] = ContextVar("teaser_request_id", default=None)
REQUEST_SINCE: ContextVar[float] = ContextVar("teaser_request_since", default=0.0)


def new_request_id() -> str:
    # Not a secret, only a label: the plain generator is three times cheaper than urandom.
    return random.getrandbits(64).to_bytes(8).hex()


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if SANE_REQUEST_ID.fullmatch(value) else None
    return None


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    # Not a coroutine (see api.sockets.DirectSocket): it adds no frame to a socket's life.
    # The id is set in the task uvicorn runs each request and each socket in, one task
    # apiece, so it needs no reset, and every record logged in that task (uvicorn's access
    # line included: it is written from inside `send`) finds it there.
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "lifespan":
            return self.app(scope, receive, send)
        request_id = incoming_request_id(scope) or new_request_id()
        REQUEST_ID.set(request_id)
        REQUEST_SINCE.set(time.time())
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self.app(scope, receive, _echoing(send, request_id.encode()))


def _echoing(send: Send, request_id: bytes) -> Send:
    def send_with_id(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (HEADER, request_id)]
            message = {**message, "headers": headers}
        return send(message)

    return send_with_id
