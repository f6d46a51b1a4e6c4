"""Clients that keep count while the database under a server fails: visitors on a socket or
polling, and a sender that retries a 503 with the same Idempotency-Key, as a client should."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import DEMO_HEADERS, DEMO_SITE, OnLoopback

RETRIES = 60  # bounded: a send still refused after this many tries is counted as lost


@dataclass
class Visitor:
    """What reached one session, by socket or by poll, in order of arrival."""

    session: str
    teasers: list[dict[str, Any]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)  # how a socket was closed, if it was
    statuses: Counter[int] = field(default_factory=Counter)  # poll answers

    @property
    def ids(self) -> set[str]:
        return {teaser["id"] for teaser in self.teasers}

    @property
    def first_arrivals(self) -> list[int]:
        """The seq of each message the first time it came (the widget shows it then)."""
        seen: dict[str, int] = {}
        for teaser in self.teasers:
            seen.setdefault(teaser["id"], teaser["seq"])
        return list(seen.values())

    async def listen(self, server: OnLoopback, opened: asyncio.Event, acks: bool = True) -> None:
        """A socket that acks every teaser at once, as the widget does (unless not `acks`)."""
        url = f"{server.ws_url}/api/teaser-ws?sessionId={self.session}&siteId={DEMO_SITE}"
        try:
            async with connect(url) as socket:
                opened.set()
                async for raw in socket:
                    frame = json.loads(raw)
                    if frame["type"] == "teaser":
                        self.teasers.append(frame)
                        if acks:
                            await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
        except ConnectionClosed as exc:
            self.closed.append(repr(exc.rcvd))
        else:
            self.closed.append("closed normally")

    async def poll(self, server: OnLoopback, every: float) -> None:
        """Poll from the last number seen, as the widget does, so that an answer lost on
        the way is sent again."""
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            while True:
                body: dict[str, Any] = {"sessionId": self.session, "siteId": DEMO_SITE}
                if self.teasers:
                    body["since"] = max(teaser["seq"] for teaser in self.teasers)
                response = await client.post("/api/teaser-messages", json=body)
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.teasers += response.json()["messages"]
                await asyncio.sleep(every)

    async def wait_for(self, ids: set[str], within: float) -> None:
        deadline = time.monotonic() + within
        while not ids <= self.ids and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


@dataclass
class Sender:
    """Sends that a client saw accepted (201), by session, and every answer it got."""

    sent: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    without_retry_after: int = 0  # 503s that did not say when to try again
    lost: int = 0  # sends refused RETRIES times

    async def send(self, client: httpx.AsyncClient, session: str, text: str) -> None:
        headers = {**DEMO_HEADERS, "Idempotency-Key": uuid.uuid4().hex}
        for _ in range(RETRIES):
            try:
                response = await client.put(
                    "/api/teaser-messages",
                    headers=headers,
                    json={"sessionId": session, "message": text},
                )
            except httpx.TransportError:
                self.statuses[0] += 1  # no answer at all: the worker died
                return
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                self.sent.setdefault(session, []).append(response.json()["id"])
                return
            if response.status_code != 503:
                return
            if "retry-after" not in response.headers:
                self.without_retry_after += 1
            # Sooner than Retry-After asks, to keep the test short; a blip passes in time.
            await asyncio.sleep(0.2)
        self.lost += 1

    @property
    def accepted(self) -> int:
        return sum(len(ids) for ids in self.sent.values())
