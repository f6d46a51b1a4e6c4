"""A LiveConnection, driven through nothing but the SocketHub protocol: frames in order, a
bounded window, acks and pongs passed on once, replay from a position, and its deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.connection import (
    CloseCode,
    LiveConnection,
    SocketHub,
    SocketTimings,
)
from realtime.delivery.frames import PING_FRAME
from realtime.delivery.store import LeasingSocket, TeaserStore
from realtime.delivery.teaser import Teaser
from tests.delivery.fakes import (
    SITE,
    FakeClock,
    FakeTransport,
    drafts,
    eventually,
    migrated_engine,
    said,
)


class RecordingHub:
    """A SocketHub over a real store that records what the socket tells it. Only the
    protocol's members exist here: a socket asking for anything more fails."""

    def __init__(self, store: TeaserStore) -> None:
        self.store = store
        self.listening = True
        self.pending_maybe = False
        self.claims: list[int] = []
        self.acks: list[str] = []
        self.pongs: list[LiveConnection] = []
        self.latencies: list[str] = []
        self.given_back: list[Teaser] = []
        self.handoffs = 0

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
        self.claims.append(limit)
        return self.store.claim_pending(site_id, session_id, holder, path, limit, mine)

    def give_back(self, connection: LiveConnection, teasers: list[Teaser]) -> None:
        self.given_back.extend(teasers)

    def took_handoff(self, count: int) -> None:
        self.handoffs += count

    def recover(
        self, site_id: str, session_id: str, since: int, path: str | None
    ) -> Awaitable[list[Teaser] | None]:
        return self.store.recover(site_id, session_id, since, path)

    async def may_have(self, site_id: str, session_id: str) -> bool:
        return self.pending_maybe

    def acknowledge(self, connection: LiveConnection, message_id: str) -> None:
        self.acks.append(message_id)

    def ponged(self, connection: LiveConnection) -> None:
        self.pongs.append(connection)

    def record_latency(self, teaser: Teaser) -> None:
        self.latencies.append(teaser.id)


class Sockets:
    """Opens connections on one RecordingHub and stops them all after the test."""

    def __init__(self, store: TeaserStore) -> None:
        self.store = store
        self.hub = RecordingHub(store)
        self.opened: list[LiveConnection] = []

    def open(
        self,
        session_id: str = "s1",
        timings: SocketTimings | None = None,
        path: str | None = None,
        since: int | None = None,
        woken: bool = True,
    ) -> tuple[LiveConnection, FakeTransport]:
        transport = FakeTransport()
        hub: SocketHub = self.hub
        connection = LiveConnection(
            hub, timings or SocketTimings(), SITE, session_id, transport, path, since
        )
        self.opened.append(connection)
        if woken:
            connection.wake()  # what Hub.attach does
        return connection, transport

    async def settled(
        self, timings: SocketTimings | None = None
    ) -> tuple[LiveConnection, FakeTransport]:
        connection, transport = self.open(timings=timings)
        await eventually(lambda: connection.settled)
        return connection, transport


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[TeaserStore]:
    engine: AsyncEngine = await migrated_engine(sqlite_url)
    store = TeaserStore(engine, clock=FakeClock())
    yield store
    await store.close()
    await engine.dispose()


@pytest.fixture
async def sockets(store: TeaserStore) -> AsyncIterator[Sockets]:
    sockets = Sockets(store)
    yield sockets
    for connection in sockets.opened:
        await connection.stop()


def seqs(transport: FakeTransport) -> list[int]:
    return [frame["seq"] for frame in transport.teasers]


async def test_waiting_frames_are_sent_in_session_seq_order(
    sockets: Sockets, store: TeaserStore
) -> None:
    sent = await store.send(SITE, drafts("s1", "one", "two", "three"))

    _, transport = sockets.open()
    await eventually(lambda: len(transport.teasers) == 3)

    assert seqs(transport) == [1, 2, 3]
    assert [frame["id"] for frame in transport.teasers] == [t.id for t in sent]
    assert transport.teasers[0]["message"] == "one"


async def test_a_hand_over_given_out_of_order_is_still_sent_in_session_seq_order(
    sockets: Sockets, store: TeaserStore
) -> None:
    connection, transport = await sockets.settled()
    socket = LeasingSocket(connection.holder, 3)
    leased = await store.send(SITE, drafts("s1", "a", "b", "c"), holders={"s1": socket})

    connection.hand_over(list(reversed(leased)))
    await eventually(lambda: len(transport.teasers) == 3)

    assert seqs(transport) == [1, 2, 3]


async def test_at_most_a_window_is_in_flight_and_an_ack_of_a_full_window_brings_the_next(
    sockets: Sockets, store: TeaserStore
) -> None:
    sent = await store.send(SITE, drafts("s1", *(f"m{i}" for i in range(5))))
    connection, transport = sockets.open(timings=SocketTimings(window=2))
    await eventually(lambda: len(transport.teasers) == 2)
    await asyncio.sleep(0.02)
    assert seqs(transport) == [1, 2]
    assert connection.room == 0

    await connection.heard(said({"type": "ack", "id": sent[0].id}))
    await eventually(lambda: len(transport.teasers) == 3)
    await asyncio.sleep(0.02)

    assert seqs(transport) == [1, 2, 3]
    assert connection.unacked == {sent[1].id, sent[2].id}
    assert sockets.hub.claims == [2, 1]  # never more than the room there is


async def test_an_ack_is_passed_to_the_hub_once_and_only_for_a_message_in_flight(
    sockets: Sockets, store: TeaserStore
) -> None:
    [teaser] = await store.send(SITE, drafts("s1", "hi"))
    connection, transport = sockets.open()
    await eventually(lambda: len(transport.teasers) == 1)

    frames: list[dict[str, object]] = [
        {"type": "ack", "id": "tm_unknown"},
        {"type": "ack", "id": 7},
        {"type": "ack"},
        {"type": "nack", "id": teaser.id},
        {"type": "ack", "id": teaser.id},
        {"type": "ack", "id": teaser.id},
    ]
    for frame in frames:
        await connection.heard(said(frame))

    assert sockets.hub.acks == [teaser.id]
    assert connection.unacked == set()


async def test_a_pong_marks_presence_through_the_hub(sockets: Sockets) -> None:
    connection, _ = sockets.open(woken=False)

    await connection.heard(said({"type": "pong"}))
    await connection.heard(said({"type": "ping"}))  # not a pong: life, but no presence mark

    assert sockets.hub.pongs == [connection]


async def test_any_frame_from_the_client_counts_as_a_sign_of_life(sockets: Sockets) -> None:
    timings = SocketTimings(heartbeat_timeout=0.05)
    silent, silent_transport = sockets.open(timings=timings, woken=False)
    talking, talking_transport = sockets.open(timings=timings, woken=False)
    await asyncio.sleep(0.06)

    await talking.heard(said({"type": "anything at all"}))
    now = time.monotonic()

    assert talking.check(now) is None
    chore = silent.check(now)
    assert chore is not None
    await chore
    assert silent_transport.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert talking_transport.close_code is None


async def test_since_replays_what_was_handed_out_after_it_and_then_delivers_what_waits(
    sockets: Sockets, store: TeaserStore
) -> None:
    await store.send(SITE, drafts("s1", "one", "two", "three"))
    await store.consume_pending(SITE, "s1")  # a poll answer that never arrived
    [fresh] = await store.send(SITE, drafts("s1", "four"))

    connection, transport = sockets.open(since=1)
    await eventually(lambda: len(transport.teasers) == 3)

    assert seqs(transport) == [2, 3, 4]
    assert connection.unacked == {fresh.id}  # only the new one waits for an ack


async def test_an_unknown_position_replays_nothing(sockets: Sockets, store: TeaserStore) -> None:
    await store.send(SITE, drafts("s1", "one"))
    await store.consume_pending(SITE, "s1")

    connection, transport = sockets.open(since=99)
    await eventually(lambda: connection.settled)

    assert transport.teasers == []


async def test_a_failing_transport_closes_the_socket_with_internal_error(
    sockets: Sockets, store: TeaserStore
) -> None:
    [teaser] = await store.send(SITE, drafts("s1", "undeliverable"))
    connection, transport = sockets.open(woken=False)
    transport.fail_with(OSError("broken pipe"))

    connection.wake()
    await eventually(lambda: transport.close_code is not None)

    assert transport.close_code == CloseCode.INTERNAL_ERROR
    assert connection.closed
    assert teaser.id in connection.held  # still leased: the hub gives it back on detach
    claims = len(sockets.hub.claims)
    connection.wake()
    await asyncio.sleep(0.02)
    assert len(sockets.hub.claims) == claims  # a closed socket delivers nothing more


async def test_check_returns_none_when_nothing_is_due(sockets: Sockets) -> None:
    connection, _ = await sockets.settled()

    assert connection.check(time.monotonic()) is None


async def test_check_pings_once_a_heartbeat_interval_has_passed(sockets: Sockets) -> None:
    timings = SocketTimings(heartbeat_interval=1.0)
    connection, transport = await sockets.settled(timings=timings)
    due = time.monotonic() + 1.0

    chore = connection.check(due)
    assert chore is not None
    await chore

    assert transport.frames == [PING_FRAME]
    assert connection.check(due) is None  # not again until the next interval


async def test_while_deaf_to_other_workers_a_socket_looks_in_the_store_each_recheck(
    sockets: Sockets, store: TeaserStore
) -> None:
    timings = SocketTimings(recheck_interval=1.0)
    connection, transport = await sockets.settled(timings=timings)
    sockets.hub.listening = False
    [teaser] = await store.send(SITE, drafts("s1", "sent while Redis was away"))

    assert connection.check(time.monotonic()) is None
    await asyncio.sleep(0.02)
    assert transport.teasers == []
    assert connection.check(time.monotonic() + 1.0) is None  # it wakes itself
    await eventually(lambda: len(transport.teasers) == 1)

    assert transport.teasers[0]["id"] == teaser.id


@pytest.mark.parametrize("maybe", [True, False], ids=["maybe", "nothing"])
async def test_once_a_lease_period_a_socket_looks_in_the_store_if_the_index_says_maybe(
    sockets: Sockets, store: TeaserStore, maybe: bool
) -> None:
    timings = SocketTimings(lease_seconds=1.0)
    connection, transport = await sockets.settled(timings=timings)
    sockets.hub.pending_maybe = maybe
    await store.send(SITE, drafts("s1", "a lease ran out elsewhere"))
    claims = len(sockets.hub.claims)

    chore = connection.check(time.monotonic() + 2.0)
    assert chore is not None
    await chore
    await asyncio.sleep(0.05)

    assert len(transport.teasers) == int(maybe)
    assert len(sockets.hub.claims) == claims + int(maybe)


async def test_a_stopped_socket_sends_nothing_more_but_remembers_what_it_holds(
    sockets: Sockets, store: TeaserStore
) -> None:
    connection, transport = sockets.open(woken=False)
    transport.stall()
    sent = await store.send(SITE, drafts("s1", "one", "two"))
    connection.wake()
    await eventually(lambda: connection.unacked == {t.id for t in sent})

    await connection.stop()

    assert transport.frames == []
    assert connection.closed and connection.held == {t.id for t in sent}
