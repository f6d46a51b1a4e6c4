"""One session socket on this worker, as the hub sees it: what it has in flight, when it
must look in the store, and what its heartbeat needs."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, TypeVar

from realtime.delivery.frames import PING_FRAME, AckFrame, ClientFrame, PongFrame, teaser_frame
from realtime.delivery.handoff import handed_off
from realtime.delivery.teaser import Teaser
from realtime.fanout.backends.base import Event

logger = logging.getLogger("teaser.hub")
T = TypeVar("T")
# After a look the store could not answer (the database away), the next one comes after
# this long, doubled per failure up to the cap, with jitter: a thousand sockets must not
# knock on a database that is starting up all at once.
LOOK_AGAIN_AFTER = 0.5
LOOK_AGAIN_CAP = 15.0


class StoreFailed(Exception):
    """The store did not answer one of this socket's looks."""


class CloseCode(IntEnum):
    """The WebSocket close codes Teaser sends: RFC 6455's, and 4xxx ones of its own."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the worker is shutting down: reconnect (to another one) at once
    POLICY_VIOLATION = 1008  # an upgrade refused where no HTTP denial can be sent
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # the reader is too slow
    SIGNED_OUT = 4401  # a dashboard whose operator session ended, or a revoked visitor session
    HEARTBEAT_TIMEOUT = 4408


@dataclass(frozen=True, slots=True)
class SocketTimings:
    """A socket's deadlines (seconds) and how much it may have in flight."""

    lease_seconds: float = 30.0
    heartbeat_interval: float = 20.0
    heartbeat_timeout: float = 50.0
    send_timeout: float = 10.0
    recheck_interval: float = 8.0
    window: int = 100

    @property
    def sweep_interval(self) -> float:
        # Often enough to keep every deadline above to within a fraction of itself.
        deadlines = (self.heartbeat_interval, self.send_timeout, self.recheck_interval)
        return min(1.0, *(seconds / 4 for seconds in deadlines))


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = CloseCode.NORMAL, reason: str | None = None) -> None: ...


class SocketHub(Protocol):
    """What a socket asks of the hub that holds it: every call it makes, and no more.
    They hand back the store's own awaitables, so going through the hub adds no frame."""

    @property
    def listening(self) -> bool:
        """Whether this worker hears other workers' sends (the broker's link is up)."""
        ...

    def position(self, site_id: str, session_id: str) -> Awaitable[int]: ...

    def claim_pending(
        self,
        site_id: str,
        session_id: str,
        holder: str,
        path: str | None,
        limit: int,
        mine: bool = False,
    ) -> Awaitable[list[Teaser]]: ...

    def give_back(self, connection: LiveConnection, teasers: list[Teaser]) -> None:
        """Release these, handed to the socket with no room for them, to be claimed later."""
        ...

    def took_handoff(self, count: int) -> None:
        """This many came whole from a send on another worker."""
        ...

    def recover(
        self, site_id: str, session_id: str, since: int, path: str | None
    ) -> Awaitable[list[Teaser] | None]: ...

    def may_have(self, site_id: str, session_id: str) -> Awaitable[bool]: ...

    def acknowledge(self, connection: LiveConnection, message_id: str) -> None: ...

    def ponged(self, connection: LiveConnection) -> None: ...

    def record_latency(self, teaser: Teaser) -> None: ...


class LiveConnection:
    """One session socket. It owns no task while idle: the broker wakes it through a
    callback, a short-lived task delivers, and the hub's sweep does its heartbeat.

    At most `window` messages are in flight (sent, not yet acked): a reader that stops
    acking stops getting more and is dropped after `send_timeout`, so a stalled tab can
    never pile up memory here. Its messages wait for its next connection, or a poll."""

    __slots__ = (
        "_acked",
        "_claim_mine",
        "_delivery",
        "_handed",
        "_look",
        "claiming",
        "closed",
        "failures",
        "highest_sent",
        "holder",
        "hub",
        "last_heard",
        "last_pinged",
        "last_progress",
        "listed",
        "look_again_at",
        "next_lease_check",
        "next_recheck",
        "path",
        "reserved",
        "sending_since",
        "session_id",
        "since",
        "site_id",
        "timings",
        "transport",
        "unacked",
    )

    def __init__(
        self,
        hub: SocketHub,
        timings: SocketTimings,
        site_id: str,
        session_id: str,
        transport: Transport,
        path: str | None,
        since: int | None,
    ) -> None:
        self.hub = hub
        self.timings = timings
        self.site_id = site_id
        self.session_id = session_id
        self.path = path
        self.since = since
        self.transport = transport
        self.holder = secrets.token_hex(12)
        now = time.monotonic()
        self.last_heard = now
        self.last_progress = now
        self.last_pinged = now
        # Spread over the lease period, so sockets opened together do not look together.
        self.next_lease_check = now + random.uniform(0.5, 1.5) * timings.lease_seconds
        self.next_recheck = now + timings.recheck_interval
        self.look_again_at: float | None = None  # after a look the store did not answer
        self.failures = 0  # such looks in a row
        self.unacked: set[str] = set()
        # Acked here, not yet consumed in the store (acks are written in batches): a claim
        # that also takes what is leased to this socket may find them still there.
        self._acked: set[str] = set()
        # The client has every message of this session up to here (None: not known yet).
        self.highest_sent = since
        self.closed = False
        self.sending_since: float | None = None
        self.claiming = False
        self.reserved = 0  # leases a send on this worker is writing for this socket
        self._look = True  # the store may hold something for this socket
        # The next claim also takes what is leased to this socket already (a hand-off
        # came with a gap before it: the missing one may be in the store, leased here).
        self._claim_mine = False
        self._handed: list[Teaser] = []  # stored already leased to this socket
        self.listed = False  # named in the socket directory
        self._delivery: asyncio.Task[None] | None = None

    @property
    def room(self) -> int:
        """How many more may be sent before acks come back."""
        return self.timings.window - len(self.unacked)

    @property
    def settled(self) -> bool:
        """Whether a send may lease to this socket: it is not closed, knows its position,
        and has no look in the store due (else order could break between the two)."""
        return not (self.closed or self._look or self.claiming or self.highest_sent is None)

    @property
    def free(self) -> int:
        """How many more a send on this worker may lease to this socket."""
        return self.room - len(self._handed) - self.reserved

    def wake(self, event: Event | None = None) -> None:
        """Look in the store soon (a broker event: something was sent to this session), or
        take what another worker's send stored already leased to this socket."""
        if event is not None and event.message:
            handoff = handed_off(self.site_id, self.session_id, event.message)
            if handoff is not None:
                holder, teasers = handoff
                if holder == self.holder:
                    self.take_handed(teasers)
                return  # for another socket of this session
        self._look = True
        self._start_delivery()

    def take_handed(self, teasers: list[Teaser]) -> None:
        """A send on another worker stored these leased to this socket: send them, but
        none twice (a claim may have found them first), and no more than there is room
        for (the rest is given back, and claimed as acks make room)."""
        if self.closed:
            return  # the hub gives back what a closed socket's holder holds
        self.hub.took_handoff(len(teasers))
        held = self.held
        sent_up_to = self.highest_sent or 0
        fresh = [
            t
            for t in teasers
            if t.id not in held and (self.highest_sent is None or (t.session_seq or 0) > sent_up_to)
        ]
        room = max(0, self.free)
        if len(fresh) > room:
            self.hub.give_back(self, fresh[room:])
            fresh = fresh[:room]
        if fresh:
            self.hand_over(fresh)

    def hand_over(self, teasers: list[Teaser]) -> None:
        """Send these, which a send on this worker stored already leased to this socket
        (none: that send failed, but a claim may have waited for it to end)."""
        if not teasers:
            self._start_delivery()
            return
        first = min(t.session_seq or 0 for t in teasers)
        if self.highest_sent is None or first != 1 + max(
            [self.highest_sent, *(t.session_seq or 0 for t in self._handed)]
        ):
            # Something older may still wait in the store (sent by another worker, or
            # before this socket opened), or be on its way here leased already: send that
            # first, so seq never goes backwards.
            self._look = True
            self._claim_mine = True
        self._handed.extend(teasers)
        self._start_delivery()

    async def heard(self, frame: ClientFrame | None) -> None:
        """Handle one frame from the client: an ack consumes a message, anything proves life."""
        self.last_heard = time.monotonic()
        if isinstance(frame, AckFrame):
            message_id = frame.id
            if message_id in self.unacked:
                window_was_full = self.room <= 0
                self.unacked.discard(message_id)
                self._acked.add(message_id)
                self.last_progress = time.monotonic()
                if window_was_full:
                    self.wake()
                # Not awaited: this socket's next frames (its close, say) must not queue up
                # behind the database.
                self.hub.acknowledge(self, message_id)
        elif isinstance(frame, PongFrame):
            self.hub.ponged(self)

    def ack_written(self, message_id: str) -> None:
        """The store has written this socket's ack: a claim can't find the message now."""
        self._acked.discard(message_id)

    @property
    def held(self) -> set[str]:
        """Ids leased to this socket and not yet acked: in flight, or waiting to be sent."""
        return self.unacked | {teaser.id for teaser in self._handed}

    async def stop(self) -> None:
        """Closed: deliver nothing more."""
        self.closed = True
        delivery = self._delivery
        if delivery is not None:
            delivery.cancel()
            with suppress(asyncio.CancelledError):
                await delivery

    def _start_delivery(self) -> None:
        if self._delivery is None and not self.closed:
            self._delivery = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        try:
            if self.since is not None:
                await self.replay_missed(self.since)
                self.since = None
            elif self.highest_sent is None:
                # Read before the first claim: everything up to here is either claimed
                # now, or not for this socket (consumed, expired, or held by another).
                # The claim always follows: a send that committed before this socket was
                # listening woke nobody, and the pending index may not be marked yet.
                self.highest_sent = await self._ask(
                    self.hub.position(self.site_id, self.session_id)
                )
                self._look = True
            while (self._look or self._handed) and not self.closed:
                claimed: list[Teaser] = []
                limit = self.room - len(self._handed)
                if self._look and limit > 0:
                    if self.reserved:
                        # A send is leasing messages to this socket: they may be older than
                        # what a claim finds now. Its hand-over starts this again, and no
                        # new lease is taken while a look is due (Hub.reserve).
                        break
                    self._look = False
                    claimed = await self.claim(limit)
                    self._look = self._look or len(claimed) == limit
                handed, self._handed = self._handed, []
                await self._send_teasers(claimed + handed)
                if self.room <= 0:
                    break  # an ack starts it again
            self.failures = 0
        except asyncio.CancelledError:
            raise
        except StoreFailed as exc:
            # The database away: the socket stays open and looks again later. Delivery
            # goes by seq, so that look finds whatever this one missed.
            self._look = True
            self.failures += 1
            delay = min(LOOK_AGAIN_CAP, LOOK_AGAIN_AFTER * 2 ** min(self.failures, 8))
            self.look_again_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
            logger.warning("delivery to %s waits for the store: %r", self.session_id, exc.__cause__)
        except Exception as exc:
            # A send on a closing socket: the client must reconnect (or poll) to be sure
            # it misses nothing.
            logger.warning("delivery to %s stopped: %r", self.session_id, exc)
            self.closed = True
            with suppress(Exception):
                await self.transport.close(CloseCode.INTERNAL_ERROR, "delivery failed")
        finally:
            self._delivery = None

    @staticmethod
    async def _ask(answer: Awaitable[T]) -> T:
        try:
            return await answer
        except Exception as exc:
            raise StoreFailed from exc

    async def claim(self, limit: int) -> list[Teaser]:
        """Lease the oldest `limit` messages waiting in the store to this socket."""
        # Left set if the claim fails: what it may have leased is then known only to the
        # store, and a close gives back everything this socket's holder holds.
        self.claiming = True
        mine, self._claim_mine = self._claim_mine, False
        teasers = await self._ask(
            self.hub.claim_pending(
                self.site_id, self.session_id, self.holder, self.path, limit, mine
            )
        )
        self.claiming = False
        # A claim tried again after a lost connection also hands back what this socket
        # already holds, and one that takes what is leased here what was acked and is not
        # yet consumed: sent once is enough.
        held = self.held
        teasers = [t for t in teasers if t.id not in held and t.id not in self._acked]
        # In flight from here on: a close before they are sent still gives them back.
        self.unacked.update(teaser.id for teaser in teasers)
        return teasers

    async def _send_teasers(self, teasers: list[Teaser]) -> None:
        if not teasers:
            return
        if len(self.unacked) <= len(teasers):
            self.last_progress = time.monotonic()
        # All count as in flight before the first await: a socket closed (this task
        # cancelled) halfway must still give every one of them back.
        self.unacked.update(teaser.id for teaser in teasers)
        for teaser in sorted(teasers, key=lambda t: t.session_seq or 0):
            self.hub.record_latency(teaser)
            await self.send(teaser_frame(teaser))
            self.highest_sent = max(self.highest_sent or 0, teaser.session_seq or 0)

    async def replay_missed(self, since: int) -> None:
        """Resend what was handed out after `since` but never reached this client."""
        missed = await self._ask(self.hub.recover(self.site_id, self.session_id, since, self.path))
        for teaser in missed or []:
            await self.send(teaser_frame(teaser))

    async def send(self, frame: str) -> None:
        # A send waits only while the transport's buffers are full; the sweep closes a
        # socket stuck like that for send_timeout, which ends the wait.
        self.sending_since = time.monotonic()
        await self.transport.send_text(frame)
        self.sending_since = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        with suppress(Exception):
            await self.transport.close(code, reason)

    def check(self, now: float) -> Coroutine[None, None, None] | None:
        """The sweep's look at this socket: what it needs done now, if anything."""
        timings = self.timings
        if now - self.last_heard >= timings.heartbeat_timeout:
            return self.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
        # A reader too slow: it stopped acking a full window, or a send is stuck.
        waiting_since = [self.sending_since or now]
        if self.room <= 0 and self.unacked:
            waiting_since.append(self.last_progress)
        if now - min(waiting_since) >= timings.send_timeout:
            return self.close(CloseCode.TRY_AGAIN_LATER, "reader too slow")
        if now - self.last_pinged >= timings.heartbeat_interval:
            self.last_pinged = now
            return self.send(PING_FRAME)
        # Read the store unannounced only if something may be waiting there: every
        # recheck interval while deaf to other workers (Redis is down), else once a lease
        # period (a dead worker's leases run out silently) if the pending index says maybe.
        if self.look_again_at is not None and now >= self.look_again_at:
            self.look_again_at = None
            self.wake()
        elif not self.hub.listening and now >= self.next_recheck:
            self.next_recheck = now + timings.recheck_interval
            self.wake()
        elif now >= self.next_lease_check:
            self.next_lease_check = now + timings.lease_seconds
            return self._look_if_pending()
        return None

    async def _look_if_pending(self) -> None:
        if await self.hub.may_have(self.site_id, self.session_id):
            self.wake()
