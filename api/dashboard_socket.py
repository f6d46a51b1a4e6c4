"""WebSocket /api/dashboard/ws: a dashboard, live.

It listens on the site's activity channel (the same broker as teasers, so with Redis it
hears every worker), reads each named row back in full, and pushes the rows that match
the operator's current view, plus the metric cards. Its frames, both ways, are declared
in realtime/contract/frames.py (and served as AsyncAPI at /asyncapi.json): hello, feed,
teasers, stats (on activity, ≤ 2/s, and every 5 s), resync and error from the server;
view from the client (the first view may also come as the URL's query). It closes with
SIGNED_OUT (4401) as soon as its operator session ends, whichever worker ended it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.auth import runtime_of
from api.operator_auth import Principal, check_same_origin, dashboard_principal, session_principal
from api.sockets import DATABASE_AWAY, database_away, refuse
from realtime.contract import (
    MAX_DASHBOARD_FRAME,
    ErrorDetail,
    ErrorFrame,
    FeedFrame,
    HelloFrame,
    ResyncFrame,
    StatsFrame,
    TeaserFate,
    TeasersFrame,
    ViewFrame,
    ViewQuery,
    encode,
    from_strings,
    invalid,
)
from realtime.delivery import CloseCode
from realtime.fanout import ActivityBatch, sign_out_channel
from realtime.insight import View, refs_of
from realtime.platform import InvalidInput, TeaserError
from realtime.runtime import Runtime

logger = logging.getLogger("teaser.dashboard")

STATS_EVERY = 5.0  # online-now and expiries change with no activity at all
STATS_AT_MOST = 0.5  # between two pushes of the cards while activity flows
# A revocation is announced on the broker, and the socket looks at once; this is for the
# word that never comes (the `teaser` command on a server without Redis, a lost message).
SESSION_RECHECK = 5.0
TEASER_KINDS = ("teaser_sent", "teaser_delivered")


async def dashboard_socket(websocket: WebSocket) -> None:
    runtime = runtime_of(websocket)
    try:
        # A page on another site could otherwise open this socket with the operator's cookie.
        check_same_origin(websocket)
        principal = await dashboard_principal(websocket)
        asked = from_strings(websocket.query_params.multi_items(), ViewQuery)
        asked.view(runtime.store.clock())
    except TeaserError as exc:
        await refuse(websocket, exc)
        return
    except Exception as exc:
        if not database_away(exc):
            raise
        await refuse(websocket, DATABASE_AWAY)
        return
    await websocket.accept()
    await DashboardConnection(runtime, websocket, principal, asked).run()


class DashboardConnection:
    def __init__(
        self, runtime: Runtime, websocket: WebSocket, principal: Principal, asked: ViewQuery
    ) -> None:
        self.runtime = runtime
        self.websocket = websocket
        self.principal = principal
        self.site_id = principal.site_id
        self._asked = asked
        self._stats_due = asyncio.Event()
        self._recheck_session = asyncio.Event()
        self._send_lock = asyncio.Lock()

    @property
    def view(self) -> View:
        # Parsed at each use, so "the last 24 hours" keeps meaning that on a socket kept open.
        return self._asked.view(self.runtime.store.clock())

    async def run(self) -> None:
        async with self.runtime.activity.subscribe(self.site_id) as batches, self._sign_outs():
            operator = self.principal.operator
            await self._send(HelloFrame(self.site_id, operator.email if operator else None))
            await self._push_stats()
            jobs = [self._listen(batches), self._read_client(), self._tick()]
            if self.principal.session is not None:
                jobs.append(self._watch_session())
            tasks = [asyncio.create_task(job) for job in jobs]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                        await task

    async def _listen(self, batches: AsyncIterator[ActivityBatch]) -> None:
        async for batch in batches:
            if batch.lost:
                await self._send(ResyncFrame())
            await self._forward(batch.items)
            self._stats_due.set()

    async def _forward(self, batch: list[dict[str, Any]]) -> None:
        try:
            items = await self.runtime.analytics.items(self.site_id, self.view, refs_of(batch))
        except Exception as exc:
            if not database_away(exc):
                raise
            # The page reloads its feed on a resync, by when the database may be back.
            await self._send(ResyncFrame())
            items = []
        if items:
            await self._send(FeedFrame(items))  # type: ignore[arg-type]
        # Teaser fates go out whatever the view, for the compose dialog's live status.
        fates = [
            TeaserFate(entry["id"], entry["kind"], entry.get("sessionId"), entry.get("via"))
            for entry in batch
            if entry.get("kind") in TEASER_KINDS
        ]
        if fates:
            await self._send(TeasersFrame(fates))

    async def _read_client(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes")
            frame = _view_frame(raw) if raw and len(raw) <= MAX_DASHBOARD_FRAME else None
            if frame is None:
                continue
            try:
                asked = msgspec.convert(frame, ViewFrame)
                asked.view(self.runtime.store.clock())
            except (msgspec.ValidationError, InvalidInput) as exc:
                error = exc if isinstance(exc, InvalidInput) else invalid(exc, ViewFrame)
                await self._send(ErrorFrame(ErrorDetail(error.code, error.message)))
                continue
            self._asked = asked
            self._stats_due.set()

    async def _tick(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 that swallows a cancel landing
            # as the event is set, and the socket's end would wait on this task for ever.
            with suppress(TimeoutError):
                async with asyncio.timeout(STATS_EVERY):
                    await self._stats_due.wait()
            self._stats_due.clear()
            await self._push_stats()
            await asyncio.sleep(STATS_AT_MOST)

    @asynccontextmanager
    async def _sign_outs(self) -> AsyncIterator[None]:
        """Hears, from any worker, that some session of this operator has ended."""
        operator = self.principal.operator
        if operator is None or self.principal.session is None:
            yield
            return
        channel = sign_out_channel(operator.id)
        # A RESYNC (the broker back after an outage) reaches this listener too.
        async with self.runtime.broker.listen(channel, lambda _: self._recheck_session.set()):
            yield

    async def _watch_session(self) -> None:
        while await self._still_signed_in():
            with suppress(TimeoutError):
                async with asyncio.timeout(SESSION_RECHECK):
                    await self._recheck_session.wait()
            self._recheck_session.clear()
        async with self._send_lock:
            await self.websocket.close(CloseCode.SIGNED_OUT, "signed out")

    async def _still_signed_in(self) -> bool:
        try:
            return await session_principal(self.websocket) is not None
        except Exception as exc:
            if not database_away(exc):
                raise
            return True  # can't tell while the database is away: ask again at the recheck

    async def _push_stats(self) -> None:
        """The cards; none this round while the database is away (the next round tries)."""
        try:
            stats = await self.runtime.analytics.stats(self.site_id, self.view)
        except Exception as exc:
            if not database_away(exc):
                raise
            return
        await self._send(StatsFrame(stats))  # type: ignore[arg-type]

    async def _send(self, frame: msgspec.Struct) -> None:
        async with self._send_lock:
            await self.websocket.send_text(encode(frame).decode())


def _view_frame(raw: str | bytes) -> dict[str, Any] | None:
    """A frame that says it is a view, as decoded JSON (read into a ViewFrame next); any
    other frame, or none, is ignored, as before."""
    try:
        frame = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return frame if isinstance(frame, dict) and frame.get("type") == "view" else None
