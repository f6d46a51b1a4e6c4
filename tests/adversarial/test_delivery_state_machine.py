"""Hypothesis drives the real TeaserStore through any interleaving of sends, polls, socket
claims, acks, disconnects without an ack, and a moving clock, beside a model of what each
message may still do. After every step the database must agree with the model:

- no loss: every message is consumed, or still pending, or expired; each poll and each claim
  hands over exactly what is deliverable, and in the end everything unexpired comes out;
- no duplicate: a message is consumed once, by one poll or one ack, never twice;
- ordered: a session's messages come out in send order, numbered 1, 2, 3…;
- never after expiry: nothing is handed over at or after its `expiresAt`.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.store import TeaserStore
from realtime.delivery.teaser import Draft, Priority, Teaser
from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from realtime.platform.tables import teaser_messages
from tests.delivery.fakes import FakeClock
from tests.support import drop_postgres_database, fresh_postgres_database

T = TypeVar("T")
LEASE_MS = 5_000
SESSIONS = st.sampled_from(["sess_a", "sess_b"])
EXPIRIES = st.sampled_from([1_000, 2_000, 10_000, 60_000])  # some outlive a lease, some do not
POLL = "poll"


@dataclass
class Message:
    """What the model knows of one sent message."""

    id: str
    session: str
    session_seq: int
    expires_at: int
    holder: str | None = None  # the socket it is leased to
    lease_until: int = 0
    consumed_by: str | None = None  # "poll", or the socket whose ack consumed it

    def deliverable(self, now: int) -> bool:
        unleased = self.holder is None or self.lease_until <= now
        return self.consumed_by is None and self.expires_at > now and unleased


@dataclass
class Socket:
    holder: str
    session: str
    open: bool = True
    unacked: set[str] = field(default_factory=set)


class DeliveryMachine(RuleBasedStateMachine):
    loop: ClassVar[asyncio.AbstractEventLoop]
    engine: ClassVar[AsyncEngine]

    def __init__(self) -> None:
        super().__init__()
        self.site = f"site-{uuid.uuid4().hex[:12]}"  # a fresh tenant per example
        self.clock = FakeClock()
        self.store = TeaserStore(self.engine, clock=self.clock, lease_ms=LEASE_MS)
        self.messages: dict[str, Message] = {}
        self.sockets: list[Socket] = []
        self.names = itertools.count(1)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def deliverable(self, session: str) -> list[Message]:
        now = self.clock()
        waiting = [m for m in self.messages.values() if m.session == session]
        return sorted((m for m in waiting if m.deliverable(now)), key=lambda m: m.session_seq)

    def handed_over(self, session: str, teasers: list[Teaser]) -> list[Message]:
        """Check a poll's or a claim's answer against the model; return the model's messages."""
        expected = self.deliverable(session)
        assert [t.id for t in teasers] == [m.id for m in expected], "lost, extra or out of order"
        assert all(t.expires_at > self.clock() for t in teasers), "handed over after expiry"
        assert all(m.consumed_by is None for m in expected), "handed over after consumption"
        return expected

    def open_sockets(self) -> list[Socket]:
        return [socket for socket in self.sockets if socket.open]

    @rule(session=SESSIONS, count=st.integers(1, 3), expires_in=EXPIRIES, pushed=st.booleans())
    def send(self, session: str, count: int, expires_in: int, pushed: bool) -> None:
        """Store, then maybe wake the session's sockets at once (else a poll may come first)."""
        drafts = [
            Draft(session, f"m{next(self.names)}", Priority.MANUAL, expires_in)
            for _ in range(count)
        ]
        sent = self.run(self.store.send(self.site, drafts))
        last = max(
            (m.session_seq for m in self.messages.values() if m.session == session), default=0
        )

        assert [t.session_seq for t in sent] == list(range(last + 1, last + count + 1))
        for teaser in sent:
            assert teaser.session_seq is not None
            self.messages[teaser.id] = Message(
                teaser.id, session, teaser.session_seq, teaser.expires_at
            )
        for socket in self.open_sockets() if pushed else []:
            if socket.session == session:
                self.claim(socket)

    @rule(session=SESSIONS)
    def poll(self, session: str) -> None:
        polled = self.run(self.store.consume_pending(self.site, session))
        for message in self.handed_over(session, polled):
            message.consumed_by, message.holder = POLL, None

    @rule(session=SESSIONS)
    def open_socket(self, session: str) -> None:
        # Holders are unique across examples, as the hub's random ones are across workers.
        socket = Socket(f"{self.site}-socket-{next(self.names)}", session)
        self.sockets.append(socket)
        self.claim(socket)

    @precondition(lambda self: self.open_sockets())
    @rule(data=st.data())
    def wake_socket(self, data: st.DataObject) -> None:
        """The broker says "look now": the socket claims whatever is deliverable."""
        self.claim(data.draw(st.sampled_from(self.open_sockets())))

    def claim(self, socket: Socket) -> None:
        claimed = self.run(self.store.claim_pending(self.site, socket.session, socket.holder))
        for message in self.handed_over(socket.session, claimed):
            message.holder, message.lease_until = socket.holder, self.clock() + LEASE_MS
            socket.unacked.add(message.id)

    @precondition(lambda self: any(s.unacked for s in self.open_sockets()))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        socket = data.draw(st.sampled_from([s for s in self.open_sockets() if s.unacked]))
        unacked = sorted(socket.unacked, key=lambda i: self.messages[i].session_seq)
        self.ack_as(socket, data.draw(st.sampled_from(unacked)))

    @precondition(lambda self: self.open_sockets() and self.messages)
    @rule(data=st.data())
    def forged_ack(self, data: st.DataObject) -> None:
        """An ack for any message at all: someone else's, another session's, a consumed one."""
        socket = data.draw(st.sampled_from(self.open_sockets()))
        self.ack_as(socket, data.draw(st.sampled_from(list(self.messages))))  # in send order

    def ack_as(self, socket: Socket, message_id: str) -> None:
        message = self.messages[message_id]
        theirs = message.session == socket.session and message.holder == socket.holder
        expected = theirs and message.consumed_by is None
        acked = self.run(self.store.ack(self.site, socket.session, message_id, socket.holder))

        assert acked is expected, f"ack by {socket.holder} of {message}"
        socket.unacked.discard(message_id)
        if acked:
            message.consumed_by = socket.holder

    @precondition(lambda self: self.open_sockets())
    @rule(data=st.data())
    def disconnect_without_ack(self, data: st.DataObject) -> None:
        self.close(data.draw(st.sampled_from(self.open_sockets())))

    def close(self, socket: Socket) -> None:
        socket.open = False
        if not socket.unacked:  # as the hub does: nothing sent and unacked, nothing to give back
            return
        released = self.run(self.store.release(socket.holder))
        held = [
            m for m in self.messages.values() if m.holder == socket.holder and m.consumed_by is None
        ]
        assert released == len(held)
        for message in held:
            message.holder, message.lease_until = None, 0

    @rule(ms=st.sampled_from([1, 499, 1_000, 2_500, LEASE_MS, 30_000]))
    def advance_clock(self, ms: int) -> None:
        self.clock.advance(ms)

    @precondition(lambda self: self.expiries())
    @rule(data=st.data())
    def advance_to_an_expiry(self, data: st.DataObject) -> None:
        """To the very millisecond a message expires: the boundary that matters most."""
        self.clock.now = data.draw(st.sampled_from(self.expiries()))

    @precondition(lambda self: self.lease_ends())
    @rule(data=st.data())
    def advance_to_a_lease_end(self, data: st.DataObject) -> None:
        self.clock.now = data.draw(st.sampled_from(self.lease_ends()))

    def expiries(self) -> list[int]:
        return sorted({m.expires_at for m in self.messages.values() if m.expires_at > self.clock()})

    def lease_ends(self) -> list[int]:
        held = [m for m in self.messages.values() if m.holder and m.consumed_by is None]
        return sorted({m.lease_until for m in held if m.lease_until > self.clock()})

    @invariant()
    def the_database_agrees_with_the_model(self) -> None:
        rows = self.run(self.rows())
        assert set(rows) == set(self.messages), "a message row appeared or vanished"
        for message_id, (consumed_at, claimed_by, delivered_via) in rows.items():
            message = self.messages[message_id]
            assert (consumed_at is not None) == (message.consumed_by is not None), message
            if message.consumed_by is None:
                assert claimed_by == message.holder, message
            else:
                assert delivered_via == ("poll" if message.consumed_by == POLL else "websocket")

    async def rows(self) -> dict[str, tuple[Any, ...]]:
        c = teaser_messages.c
        query = select(c.id, c.consumed_at, c.claimed_by, c.delivered_via).where(
            c.site_id == self.site
        )
        async with self.engine.connect() as connection:
            return {row.id: tuple(row)[1:] for row in await connection.execute(query)}

    @rule()
    def everyone_leaves_and_comes_back_later(self) -> None:
        """Eventually: every tab closes, every lease runs out, and the next poll of each session
        gets exactly what is neither consumed nor expired, so nothing was lost."""
        for socket in self.open_sockets():
            self.close(socket)
        self.clock.advance(LEASE_MS)
        for session in ("sess_a", "sess_b"):
            self.poll(session)
        now = self.clock()
        assert all(m.consumed_by is not None or m.expires_at <= now for m in self.messages.values())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    url = asyncio.run(fresh_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


def test_delivery_keeps_its_promises_whatever_the_interleaving(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    engine = create_engine(database_url)
    try:
        loop.run_until_complete(upgrade(engine))
        machine = type("Machine", (DeliveryMachine,), {"loop": loop, "engine": engine})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=60,
                stateful_step_count=40,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
