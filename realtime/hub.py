"""This worker's live sockets: session -> connections, woken by broker events.

A connection claims its session's pending messages whenever the broker says "look now"
(and once on connect), sends them, and consumes each one only when the client acks it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol

import orjson

from realtime.activity import ActivityFeed
from realtime.broker import Broker, Event, Subscriber
from realtime.channels import session_channel
from realtime.clock import iso_time
from realtime.metrics import Metrics
from realtime.pending import PendingSessions
from realtime.presence import PresenceRecorder
from realtime.store import TeaserStore
from realtime.teaser import Teaser

logger = logging.getLogger("teaser.hub")

GOING_AWAY = 1001
HEARTBEAT_TIMEOUT = 4408
TRY_AGAIN_LATER = 1013


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


def teaser_frame(teaser: Teaser) -> str:
    return orjson.dumps(
        {
            "type": "teaser",
            "id": teaser.id,
            "seq": teaser.session_seq,
            "message": teaser.message,
            "priority": teaser.priority.value,
            "createdAt": iso_time(teaser.created_at),
            "expiresAt": iso_time(teaser.expires_at),
        }
    ).decode()


PING_FRAME = '{"type":"ping"}'


def teaser_activity(teaser: Teaser) -> dict[str, object]:
    """How a teaser appears in a dashboard's live feed."""
    return {"id": teaser.id, "sessionId": teaser.session_id, "message": teaser.message,
            "priority": teaser.priority.value, "at": iso_time(teaser.created_at)}  # fmt: skip


class LiveConnection:
    """One session socket. At most `window` messages are in flight (sent, not yet acked):
    a reader that stops acking stops getting more, and is dropped after `send_timeout`,
    so a stalled tab can never pile up memory here. Its messages wait for its next
    connection, or poll."""

    def __init__(
        self,
        hub: Hub,
        site_id: str,
        session_id: str,
        transport: Transport,
        path: str | None,
        since: int | None,
    ) -> None:
        self.hub = hub
        self.site_id = site_id
        self.session_id = session_id
        self.path = path
        self.since = since
        self.transport = transport
        self.holder = secrets.token_hex(12)
        self.last_heard = time.monotonic()
        self.last_progress = time.monotonic()
        self.last_pinged = time.monotonic()
        # Spread over the lease period, so sockets opened together do not look together.
        self.next_lease_check = time.monotonic() + random.uniform(0.5, 1.5) * hub.lease_seconds
        self.unacked: set[str] = set()
        self._subscriber: Subscriber | None = None

    async def heard(self, frame: dict[str, object]) -> None:
        """Handle one frame from the client: an ack consumes a message, anything proves life."""
        self.last_heard = time.monotonic()
        message_id = frame.get("id")
        if frame.get("type") == "ack" and isinstance(message_id, str):
            if message_id in self.unacked:
                window_was_full = self._window_full
                self.unacked.discard(message_id)
                self.last_progress = time.monotonic()
                await self.hub.acknowledge(self, message_id)
                if window_was_full and self._subscriber is not None:
                    self._subscriber.offer(Event(channel="", message="window"))
        elif frame.get("type") == "pong":
            self.hub.presence.seen(self.site_id, self.session_id, "websocket")

    async def pump(self, subscriber: Subscriber) -> None:
        self._subscriber = subscriber
        if self.since is not None:
            await self.replay_missed(self.since)
        look = True
        while True:
            while look and await self.deliver_pending() and not self._window_full:
                pass  # a full batch came back: there may be more waiting
            try:
                await asyncio.wait_for(subscriber.get(), timeout=self._until_next_check())
                look = True
            except TimeoutError:
                look = await self._worth_a_look()
                now = time.monotonic()
                if now - self.last_heard >= self.hub.heartbeat_timeout:
                    await self.transport.close(HEARTBEAT_TIMEOUT, "heartbeat timeout")
                    return
                if self._window_full and now - self.last_progress >= self.hub.send_timeout:
                    await self.transport.close(TRY_AGAIN_LATER, "reader too slow")
                    return
                if now - self.last_pinged >= self.hub.heartbeat_interval:
                    self.last_pinged = now
                    await self.send(PING_FRAME)

    async def _worth_a_look(self) -> bool:
        """On a quiet tick, read the store only if something may be waiting unannounced:
        always while deaf to other workers, else once a lease period (a dead worker's
        leases run out silently) and only for sessions the pending index names."""
        if not self.hub.broker.listening:
            return True
        now = time.monotonic()
        if now < self.next_lease_check:
            return False
        self.next_lease_check = now + self.hub.lease_seconds
        return await self.hub.pending.may_have(self.site_id, self.session_id)

    @property
    def _window_full(self) -> bool:
        return len(self.unacked) >= self.hub.window

    def _until_next_check(self) -> float:
        # Wake for the next ping, or exactly when silence or a stalled window becomes fatal.
        now = time.monotonic()
        deadlines = [
            self.hub.heartbeat_interval,
            self.last_heard + self.hub.heartbeat_timeout - now,
        ]
        if not self.hub.broker.listening:
            # Deaf to other workers (Redis is down): look in the store as often as a poll would.
            deadlines.append(self.hub.recheck_interval)
        if self._window_full:
            deadlines.append(self.last_progress + self.hub.send_timeout - now)
        return max(0.01, min(deadlines))

    async def replay_missed(self, since: int) -> None:
        """Resend what was handed out after `since` but never reached this client."""
        missed = await self.hub.store.recover(self.site_id, self.session_id, since, self.path)
        for teaser in missed or []:
            await self.send(teaser_frame(teaser))

    async def deliver_pending(self) -> bool:
        """Send what is waiting, as far as the window allows; True if it filled the room."""
        room = self.hub.window - len(self.unacked)
        if room <= 0:
            return False
        if not self.unacked:
            self.last_progress = time.monotonic()
        teasers = await self.hub.store.claim_pending(
            self.site_id, self.session_id, self.holder, self.path, limit=room
        )
        self.unacked.update(teaser.id for teaser in teasers)
        for teaser in teasers:
            self.hub.record_latency(teaser)
            await self.send(teaser_frame(teaser))
        return len(teasers) == room

    async def send(self, frame: str) -> None:
        """Send, but give up on a transport whose buffers stay full."""
        try:
            await asyncio.wait_for(self.transport.send_text(frame), self.hub.send_timeout)
        except TimeoutError:
            await self.transport.close(TRY_AGAIN_LATER, "reader too slow")
            raise


class Hub:
    def __init__(
        self,
        store: TeaserStore,
        broker: Broker,
        presence: PresenceRecorder,
        metrics: Metrics,
        activity: ActivityFeed,
        pending: PendingSessions,
        *,
        heartbeat_interval: float = 20.0,
        heartbeat_timeout: float = 50.0,
        send_timeout: float = 10.0,
        window: int = 100,
        recheck_interval: float = 8.0,
    ) -> None:
        self.store = store
        self.broker = broker
        self.presence = presence
        self.metrics = metrics
        self.activity = activity
        self.pending = pending
        self.lease_seconds = store.lease_ms / 1000
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.send_timeout = send_timeout
        self.window = window
        self.recheck_interval = recheck_interval
        self._connections: set[LiveConnection] = set()
        metrics.gauge(
            "teaser_open_sockets",
            "Open session WebSockets on this worker.",
            lambda: len(self._connections),
        )

    @property
    def open_sockets(self) -> int:
        return len(self._connections)

    @asynccontextmanager
    async def attach(
        self,
        site_id: str,
        session_id: str,
        transport: Transport,
        path: str | None = None,
        since: int | None = None,
    ) -> AsyncIterator[LiveConnection]:
        connection = LiveConnection(self, site_id, session_id, transport, path, since)
        self._connections.add(connection)
        self.presence.seen(site_id, session_id, "websocket")
        try:
            async with self.broker.subscribe(session_channel(site_id, session_id)) as subscriber:
                pump = asyncio.create_task(self._run_pump(connection, subscriber))
                try:
                    yield connection
                finally:
                    pump.cancel()
                    with suppress(asyncio.CancelledError):
                        await pump
        finally:
            self._connections.discard(connection)
            await self._release(connection)

    async def notify(self, site_id: str, session_id: str) -> None:
        """Wake every socket of this session, on whichever worker holds it."""
        if not await self.broker.publish(session_channel(site_id, session_id)):
            self.metrics.broker_failures.inc()

    async def acknowledge(self, connection: LiveConnection, message_id: str) -> None:
        if await self.store.ack(
            connection.site_id, connection.session_id, message_id, connection.holder
        ):
            self.metrics.delivered_ws.inc()
            self.activity.announce(connection.site_id, "teaser_delivered", via="websocket",
                                   id=message_id, sessionId=connection.session_id)  # fmt: skip

    def record_latency(self, teaser: Teaser) -> None:
        self.metrics.latency.observe(max(0, self.store.clock() - teaser.created_at) / 1000)

    async def close_all(self, code: int = GOING_AWAY) -> None:
        """Tell every client to reconnect elsewhere (graceful shutdown)."""
        for connection in list(self._connections):
            with suppress(Exception):
                await connection.transport.close(code, "server shutting down")

    async def _run_pump(self, connection: LiveConnection, subscriber: Subscriber) -> None:
        try:
            await connection.pump(subscriber)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A send on a closing socket, or the database gone: either way the client must
            # reconnect (or poll) to be sure it misses nothing.
            logger.warning("delivery to %s stopped: %r", connection.session_id, exc)
            with suppress(Exception):
                await connection.transport.close(1011, "delivery failed")

    async def _release(self, connection: LiveConnection) -> None:
        if not connection.unacked:
            return
        try:
            await self.store.release(connection.holder)
        except Exception:
            # The lease still expires by itself; the message is only delayed.
            logger.exception("could not release messages of a closed socket")
