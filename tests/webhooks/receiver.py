"""A real webhook receiver for the tests: a small Starlette app served by uvicorn on a free
port, which records every request it gets and answers as each path is told to (a status, a
delay, a redirect); it can go down and come back on the same port."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, as the standardwebhooks library verifies it (raises if not)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    location: str | None = None  # with a 3xx status: where it redirects
    body_bytes: int = 0  # an answer this long instead of a short one


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[Received]:
        return [each for each in self.received if each.path == path]

    async def _record(self, request: Request) -> Response:
        path = request.path_params["path"]
        behaviour = self.behaviours.get(path, Behaviour())
        self.received.append(
            Received(path, dict(request.headers), await request.body(), time.monotonic())
        )
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        headers = {"location": behaviour.location} if behaviour.location else {}
        body = b"x" * behaviour.body_bytes or f"answered {behaviour.status}".encode()
        return Response(body, behaviour.status, headers=headers)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._record, methods=["POST", "GET"])])
        # A slow answer still under way at a stop is cut short, not waited for.
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, timeout=15)
            self._server = self._task = None

    async def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` distinct events (by webhook-id) at `path`, waiting for them."""
        deadline = time.monotonic() + timeout
        while True:
            distinct = first_of_each(self.at(path))
            if len(distinct) >= count:
                return distinct
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{path}: {len(distinct)} of {count} events after {timeout} s: "
                    f"{[r.event['type'] for r in distinct]}"
                )
            await asyncio.sleep(0.05)


def first_of_each(received: list[Received]) -> list[Received]:
    """Each webhook-id's first arrival, in the order they came: what a receiver that
    de-duplicates by webhook-id keeps."""
    seen: dict[str, Received] = {}
    for each in received:
        seen.setdefault(each.id, each)
    return list(seen.values())
