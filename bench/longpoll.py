"""Held long-polls for the load client: one loop per session, each polling again at once
after every answer, as the widget does (widget/widget.js)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from bench.wire import SITE_ID

POLL_HEADERS = {"Content-Type": "application/json"}
# The widget gives up on a held poll this long after its wait (POLL_MARGIN in widget.js).
MARGIN_S = 10.0
RETRY_S = 1.0  # after a failed poll: a refused or broken poll must not spin


class LongPolls:
    """`POST /api/teaser-messages` with `wait`, held open by the server until a teaser for
    the session is there. Like the widget, a poll after an answer sends no `since`: the
    widget sends it only to resume after a failure or a switch of transport. Each teaser's
    text goes to `arrived`. The loops end only when closed."""

    def __init__(self, arrived: Callable[[str], None]) -> None:
        self.arrived = arrived
        self.tasks: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None
        self.stats = {"answers": 0, "plain": 0, "errors": 0}

    def hold(self, url: str, sessions: list[str], wait_ms: int) -> None:
        if self.http is None:
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.tasks += [asyncio.create_task(self._poll(url, s, wait_ms)) for s in sessions]

    async def _poll(self, url: str, session: str, wait_ms: int) -> None:
        assert self.http is not None
        # The first wait is drawn from a fifth of `wait_ms` to all of it, so that the polls
        # do not all end together (visitors come at different times); then `wait_ms` each.
        wait = random.randint(wait_ms // 5, wait_ms)
        while True:
            answer = await self._ask(url, session, wait)
            if answer is None:
                self.stats["errors"] += 1
                await asyncio.sleep(RETRY_S)
                continue
            self.stats["answers"] += 1
            for teaser in answer["messages"]:
                self.arrived(teaser["message"])
            if not answer.get("wait"):
                # Answered as a plain poll (long-polling off or full): the widget then
                # waits out the poll interval, and so does this loop.
                self.stats["plain"] += 1
                await asyncio.sleep(answer["pollInterval"] / 1000)
            wait = wait_ms

    async def _ask(self, url: str, session: str, wait: int) -> dict[str, Any] | None:
        assert self.http is not None
        body = orjson.dumps({"sessionId": session, "siteId": SITE_ID, "wait": wait})
        timeout = aiohttp.ClientTimeout(total=wait / 1000 + MARGIN_S)
        try:
            async with self.http.post(
                url, data=body, headers=POLL_HEADERS, timeout=timeout
            ) as response:
                text = await response.read()
                if response.status != 200:
                    return None
        except (aiohttp.ClientError, TimeoutError):
            return None
        answer: dict[str, Any] = orjson.loads(text)
        return answer

    async def close(self) -> int:
        """Cancel every loop (a poll cancelled mid-request closes its connection, which ends
        its hold on the server) and start the counts anew."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        closed, self.tasks = len(self.tasks), []
        self.stats = dict.fromkeys(self.stats, 0)
        if self.http is not None:
            await self.http.close()
            self.http = None
        return closed
