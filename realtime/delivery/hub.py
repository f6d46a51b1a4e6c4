"""This worker's live sockets: session -> connections.

A send on this worker stores messages already leased to the session's socket here and
hands them over directly. A send on another worker does the same for a socket the socket
directory names, and hands them over through the broker, whole (realtime/delivery/
handoff.py): the socket's worker writes the frames without a claim. Any other send (no
socket known, or one with no room) wakes the session's sockets through the broker, and they
claim what waits in the store. Either way a message is consumed only when the client acks
it. One sweep per worker, not a task per socket, keeps heartbeats and timeouts, so an idle
socket costs only its objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine, Mapping
from contextlib import suppress

from realtime.delivery.connection import CloseCode, LiveConnection, SocketTimings, Transport
from realtime.delivery.handoff import handoff_message
from realtime.delivery.pending import PendingSessions
from realtime.delivery.presence import PresenceRecorder
from realtime.delivery.store import Ack, LeasingSocket, TeaserStore
from realtime.delivery.teaser import Teaser
from realtime.fanout.activity import ActivityFeed
from realtime.fanout.broker import Broker
from realtime.fanout.channels import session_channel
from realtime.fanout.directory import SocketDirectory
from realtime.platform.clock import iso_time
from realtime.platform.metrics import Metrics

logger = logging.getLogger("teaser.hub")
# After a socket leaves the directory, how long a send that found it there just before may
# still take to store its messages leased to it (they are given back then).
LEAVE_GRACE = 2.0
# Sockets the sweep looks at between two turns of the event loop. A look is a few
# microseconds, so a sweep of 50,000 sockets in one stretch held the loop for tens of
# milliseconds each second, and any send arriving then waited that long.
SWEEP_SLICE = 500


def teaser_activity(teaser: Teaser) -> dict[str, object]:
    """How a teaser appears in a dashboard's live feed."""
    return {
        "id": teaser.id,
        "sessionId": teaser.session_id,
        "message": teaser.message,
        "priority": teaser.priority.value,
        "at": iso_time(teaser.created_at),
    }


class Hub:
    def __init__(
        self,
        store: TeaserStore,
        broker: Broker,
        presence: PresenceRecorder,
        metrics: Metrics,
        activity: ActivityFeed,
        pending: PendingSessions,
        timings: SocketTimings,
        directory: SocketDirectory | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.presence = presence
        self.metrics = metrics
        self.activity = activity
        self.pending = pending
        self.timings = timings
        self.directory = directory or SocketDirectory()
        self._sessions: dict[tuple[str, str], list[LiveConnection]] = {}
        self._holders: dict[str, LiveConnection] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[None]] = set()
        metrics.gauge(
            "teaser_open_sockets",
            "Open session WebSockets.",
            lambda: len(self._holders),
        )

    @property
    def open_sockets(self) -> int:
        return len(self._holders)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="hub-sweep")

    async def stop(self) -> None:
        for task in [self._sweeper, *self._chores]:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._sweeper = None

    async def attach(
        self,
        site_id: str,
        session_id: str,
        transport: Transport,
        path: str | None = None,
        since: int | None = None,
    ) -> LiveConnection:
        """Start delivering to a socket that was just accepted. Every attach is paired
        with a detach (no context manager: its frame would live as long as the socket)."""
        connection = LiveConnection(self, self.timings, site_id, session_id, transport, path, since)
        self._sessions.setdefault((site_id, session_id), []).append(connection)
        self._holders[connection.holder] = connection
        self.presence.seen(site_id, session_id, "websocket")
        try:
            await self.broker.add_listener(session_channel(site_id, session_id), connection.wake)
        except BaseException:
            await self.detach(connection, listening=False)
            raise
        # Named only once it listens: a hand-off sent to it from then on reaches it.
        if self.directory.enabled:
            connection.listed = await self.directory.enter(site_id, session_id, connection.holder)
        connection.wake()  # whatever waited for this session before it connected
        return connection

    async def detach(self, connection: LiveConnection, *, listening: bool = True) -> None:
        connection.closed = True  # from now on nothing starts a delivery
        self._forget(connection)
        if listening:
            channel = session_channel(connection.site_id, connection.session_id)
            await self.broker.remove_listener(channel, connection.wake)
        await connection.stop()
        # In the background: the closed socket's handler (and the place it holds in
        # the per-address quota) need not wait for the database.
        self._run_chore(self._release(connection))

    def reserve(self, site_id: str, counts: Mapping[str, int]) -> dict[str, LeasingSocket]:
        """For each session with a socket on this worker that has room, reserve up to
        `counts[session]` of it: a send stores that many already leased to the socket.
        Every reservation ends in `hand_over`."""
        found = {}
        for session_id, count in counts.items():
            for connection in self._sessions.get((site_id, session_id), ()):
                take = min(count, connection.free)
                if take > 0 and connection.settled:
                    connection.reserved += take
                    found[session_id] = LeasingSocket(connection.holder, take)
                    break
        return found

    async def hand_over(self, socket: LeasingSocket, teasers: list[Teaser]) -> None:
        """End a reservation: give the messages stored leased to the socket to it, or, if
        it closed meanwhile, back to the store for the next poll or socket at once."""
        connection = self._holders.get(socket.holder)
        if connection is not None:
            connection.reserved -= socket.room
            if not connection.closed:
                connection.hand_over(teasers)
                return
        if teasers:
            with suppress(Exception):  # else the lease runs out by itself
                await self.store.release(socket.holder, [teaser.id for teaser in teasers])

    async def notify(self, site_id: str, session_id: str) -> None:
        """Wake every socket of this session, on whichever worker holds it."""
        if not await self.broker.publish(session_channel(site_id, session_id)):
            self.metrics.broker_failures.inc()

    async def locate(self, site_id: str, session_ids: list[str]) -> dict[str, LeasingSocket]:
        """The sockets on other workers that the directory names for these sessions, each
        to take up to a window of messages."""
        if not session_ids or not self.directory.enabled or not self.broker.listening:
            return {}
        found = await self.directory.locate(site_id, session_ids)
        window = self.timings.window
        return {
            session: LeasingSocket(holder, window)
            for session, holder in found.items()
            if holder not in self._holders  # one here with no room: it claims, woken
        }

    async def hand_across(
        self, site_id: str, session_id: str, holder: str, teasers: list[Teaser]
    ) -> None:
        """Hand messages stored leased to a socket on another worker to it, whole. If no
        worker listens to the session (the socket's worker is gone) or Redis is away, give
        them back at once, for the next socket or poll, and wake the session as usual."""
        channel = session_channel(site_id, session_id)
        heard_by = await self.broker.publish_counted(channel, handoff_message(holder, teasers))
        if heard_by:
            self.metrics.handoffs.inc("sent", len(teasers))
            return
        self.metrics.handoffs.inc("given_back", len(teasers))
        with suppress(Exception):  # else the lease runs out by itself
            await self.store.release(holder, [teaser.id for teaser in teasers])
        await self.notify(site_id, session_id)

    # What a socket asks of its hub (connection.SocketHub).

    @property
    def listening(self) -> bool:
        return self.broker.listening

    def position(self, site_id: str, session_id: str) -> Awaitable[int]:
        return self.store.position(site_id, session_id)

    def claim_pending(
        self,
        site_id: str,
        session_id: str,
        holder: str,
        path: str | None,
        limit: int,
        mine: bool = False,
    ) -> Awaitable[list[Teaser]]:
        return self.store.claim_pending(site_id, session_id, holder, path, limit, mine)

    def give_back(self, connection: LiveConnection, teasers: list[Teaser]) -> None:
        self._run_chore(self._give_back(connection, teasers))

    def took_handoff(self, count: int) -> None:
        self.metrics.handoffs.inc("received", count)

    async def _give_back(self, connection: LiveConnection, teasers: list[Teaser]) -> None:
        await self.store.release(connection.holder, [teaser.id for teaser in teasers])
        connection.wake()  # claimed once acks make room

    def recover(
        self, site_id: str, session_id: str, since: int, path: str | None
    ) -> Awaitable[list[Teaser] | None]:
        return self.store.recover(site_id, session_id, since, path)

    def may_have(self, site_id: str, session_id: str) -> Awaitable[bool]:
        return self.pending.may_have(site_id, session_id)

    def ponged(self, connection: LiveConnection) -> None:
        self.presence.seen(connection.site_id, connection.session_id, "websocket")

    def acknowledge(self, connection: LiveConnection, message_id: str) -> None:
        ack = Ack(connection.site_id, connection.session_id, message_id, connection.holder)
        self.store.queue_ack(ack, self._ack_written)

    def _ack_written(self, ack: Ack, consumed: bool | BaseException) -> None:
        connection = self._holders.get(ack.holder)
        if connection is not None and not isinstance(consumed, BaseException):
            connection.ack_written(ack.message_id)
        if isinstance(consumed, BaseException):
            # Not consumed: the lease runs out and the message is offered again.
            logger.warning("ack of %s not recorded: %r", ack.message_id, consumed)
        elif consumed:
            self.metrics.delivered_ws.inc()
            self.activity.announce(
                ack.site_id,
                "teaser_delivered",
                via="websocket",
                id=ack.message_id,
                sessionId=ack.session_id,
            )

    def record_latency(self, teaser: Teaser) -> None:
        self.metrics.latency_ws.observe(max(0, self.store.clock() - teaser.created_at) / 1000)

    async def close_session(self, site_id: str, session_id: str, reason: str) -> None:
        """Close this worker's sockets of one session, which may no longer read."""
        for connection in list(self._sessions.get((site_id, session_id), ())):
            await connection.close(CloseCode.SIGNED_OUT, reason)

    async def close_all(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Tell every client to reconnect elsewhere (graceful shutdown)."""
        for connection in list(self._holders.values()):
            await connection.close(code, "server shutting down")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.timings.sweep_interval)
            await self.sweep(time.monotonic())

    async def sweep(self, now: float) -> None:
        """One look at every open socket (heartbeat, deadlines, rechecks), SWEEP_SLICE at
        a time with a turn of the loop between; a socket gone meanwhile is passed over."""
        connections = list(self._holders.values())
        for start in range(0, len(connections), SWEEP_SLICE):
            if start:
                await asyncio.sleep(0)
            for connection in connections[start : start + SWEEP_SLICE]:
                if self._holders.get(connection.holder) is not connection:
                    continue
                chore = connection.check(now)
                if chore is not None:
                    self._run_chore(chore)

    def _run_chore(self, chore: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(self._quietly(chore))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    @staticmethod
    async def _quietly(chore: Coroutine[None, None, None]) -> None:
        # A ping to a socket that is closing fails; its own receive loop ends it.
        with suppress(Exception):
            await chore

    def _forget(self, connection: LiveConnection) -> None:
        self._holders.pop(connection.holder, None)
        key = (connection.site_id, connection.session_id)
        connections = self._sessions.get(key, [])
        if connection in connections:
            connections.remove(connection)
        if not connections:
            self._sessions.pop(key, None)

    async def _release(self, connection: LiveConnection) -> None:
        site_id, session_id, holder = connection.site_id, connection.session_id, connection.holder
        if connection.listed:
            await self.directory.leave(site_id, session_id, holder)
        held = connection.held
        if held or connection.claiming:
            try:
                # Closed in the middle of a claim: what it leased is known only to the store.
                await self.store.release(holder, None if connection.claiming else held)
            except Exception as exc:
                # The lease still expires by itself; the message is only delayed.
                logger.warning("could not release messages of a closed socket: %r", exc)
        if not connection.listed:
            return
        # A send on another worker that found this socket in the directory just before it
        # left may still be storing messages leased to it: give those back once it is done,
        # and wake the session's other sockets for them.
        await asyncio.sleep(LEAVE_GRACE)
        try:
            released = await self.store.release(holder)
        except Exception as exc:
            logger.warning("could not release messages of a closed socket: %r", exc)
            return
        if released:
            await self.notify(site_id, session_id)
