"""The hub holds this worker's sockets: it wakes them, hands them what a send stores for
them, gives back what a closed one held, and its sweep keeps their heartbeats and deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.connection import CloseCode, SocketTimings
from realtime.delivery.frames import PING_FRAME
from realtime.delivery.hub import SWEEP_SLICE
from realtime.delivery.teaser import Teaser
from realtime.fanout.channels import session_channel
from tests.delivery.fakes import (
    SITE,
    FakeTransport,
    World,
    drafts,
    eventually,
    said,
    small_world,
)


@pytest.fixture
async def worlds(sqlite_engine: AsyncEngine) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    async with AsyncExitStack() as stack:

        async def open_world(**timings: Any) -> World:
            return await stack.enter_async_context(
                small_world(sqlite_engine, SocketTimings(**timings))
            )

        yield open_world


@pytest.fixture
async def world(worlds: Callable[..., Awaitable[World]]) -> World:
    return await worlds()


async def consumed_by_poll(world: World, session_id: str) -> list[Teaser]:
    """Poll the store until it hands something over (a release runs in the background)."""
    polled: list[Teaser] = []

    async def poll_gets_some() -> bool:
        polled.extend(await world.store.consume_pending(SITE, session_id))
        return bool(polled)

    await eventually(poll_gets_some)
    return polled


async def test_attach_wakes_the_socket_and_delivers_what_waited_before_it_connected(
    world: World,
) -> None:
    waiting = await world.delivery.send(SITE, drafts("s1", "first", "second"))

    connection, transport = await world.attach("s1")
    await eventually(lambda: len(transport.teasers) == 2)

    assert [f["id"] for f in transport.teasers] == [t.id for t in waiting]
    assert connection.unacked == {t.id for t in waiting}  # leased, not consumed
    assert await world.store.consume_pending(SITE, "s1") == []


async def test_a_message_sent_to_an_attached_socket_is_handed_over_without_a_claim(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection, transport = await world.attach_settled("s1")
    claims: list[str] = []
    claim = world.store.claim_pending

    def counted_claim(*args: Any, **kwargs: Any) -> Awaitable[list[Teaser]]:
        claims.append(args[1])
        return claim(*args, **kwargs)

    monkeypatch.setattr(world.store, "claim_pending", counted_claim)

    [teaser] = await world.delivery.send(SITE, drafts("s1", "straight to you"))
    await eventually(lambda: len(transport.teasers) == 1)

    assert teaser.leased_to == connection.holder
    assert transport.teasers[0]["id"] == teaser.id
    assert claims == []
    assert world.session_wakes == []  # no trip through the broker


async def test_a_send_beyond_the_sockets_window_waits_in_the_store_and_follows_an_ack(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(window=1)
    connection, transport = await world.attach_settled("s1")

    first, second = await world.delivery.send(SITE, drafts("s1", "one", "two"))
    await eventually(lambda: len(transport.teasers) == 1)
    await asyncio.sleep(0.02)
    assert [f["id"] for f in transport.teasers] == [first.id]
    assert (first.leased_to, second.leased_to) == (connection.holder, None)

    await connection.heard(said({"type": "ack", "id": first.id}))
    await eventually(lambda: len(transport.teasers) == 2)
    assert transport.teasers[1]["id"] == second.id


async def test_an_ack_consumes_the_message_and_counts_a_websocket_delivery(world: World) -> None:
    connection, transport = await world.attach_settled("s1")
    [teaser] = await world.delivery.send(SITE, drafts("s1", "hi"))
    await eventually(lambda: len(transport.teasers) == 1)

    await connection.heard(said({"type": "ack", "id": teaser.id}))
    await eventually(lambda: world.metrics.delivered_ws.value == 1)

    stored = await world.store.get(SITE, teaser.id)
    assert stored is not None and stored.delivered_via == "websocket"


async def test_detach_gives_leased_but_unacked_messages_back_to_the_store(world: World) -> None:
    connection, transport = await world.attach_settled("s1")
    acked, unacked = await world.delivery.send(SITE, drafts("s1", "seen", "not yet seen"))
    await eventually(lambda: len(transport.teasers) == 2)
    await connection.heard(said({"type": "ack", "id": acked.id}))
    await eventually(lambda: world.metrics.delivered_ws.value == 1)

    await world.hub.detach(connection)

    assert [t.id for t in await consumed_by_poll(world, "s1")] == [unacked.id]
    assert world.hub.open_sockets == 0


async def test_a_hand_over_to_a_socket_that_closed_meanwhile_goes_back_to_the_store(
    world: World,
) -> None:
    connection, _ = await world.attach_settled("s1")
    socket = world.hub.reserve(SITE, {"s1": 1})["s1"]
    teasers = await world.store.send(SITE, drafts("s1", "too late"), holders={"s1": socket})
    assert teasers[0].leased_to == connection.holder

    await world.hub.detach(connection)
    await world.hub.hand_over(socket, teasers)

    assert [t.id for t in await world.store.consume_pending(SITE, "s1")] == [teasers[0].id]


async def test_a_reservation_takes_no_more_than_the_sockets_free_room(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(window=3)
    connection, _ = await world.attach_settled("s1")

    first = world.hub.reserve(SITE, {"s1": 2, "nobody-here": 5})
    second = world.hub.reserve(SITE, {"s1": 2})

    assert set(first) == {"s1"} and first["s1"].room == 2
    assert second["s1"].room == 1
    assert world.hub.reserve(SITE, {"s1": 1}) == {}
    assert connection.free == 0
    for socket in (first["s1"], second["s1"]):
        await world.hub.hand_over(socket, [])
    assert connection.free == 3


async def test_notify_wakes_a_socket_through_the_broker(world: World) -> None:
    _, transport = await world.attach_settled("s1")
    # Stored behind the hub's back, as a send on another worker would.
    [teaser] = await world.store.send(SITE, drafts("s1", "from elsewhere"))
    await asyncio.sleep(0.02)
    assert transport.teasers == []

    await world.hub.notify(SITE, "s1")

    await eventually(lambda: len(transport.teasers) == 1)
    assert transport.teasers[0]["id"] == teaser.id
    assert world.session_wakes == [session_channel(SITE, "s1")]


async def test_a_wake_the_broker_cannot_fan_out_is_counted(world: World) -> None:
    world.broker.backend.link_up = False

    await world.hub.notify(SITE, "s1")

    assert world.metrics.broker_failures.value == 1


async def test_close_all_closes_every_socket_with_going_away(world: World) -> None:
    attached = [await world.attach(session) for session in ("s1", "s1", "s2")]

    await world.hub.close_all()

    assert [transport.close_code for _, transport in attached] == [CloseCode.GOING_AWAY] * 3
    assert all(connection.closed for connection, _ in attached)


async def test_the_sweep_pings_an_idle_socket(worlds: Callable[..., Awaitable[World]]) -> None:
    world = await worlds(heartbeat_interval=0.05, heartbeat_timeout=10.0)
    _, transport = await world.attach_settled("s1")

    await eventually(lambda: transport.pings >= 2)

    assert set(transport.frames) == {PING_FRAME}
    assert transport.close_code is None


async def test_the_sweep_looks_at_every_socket_a_slice_at_a_time_letting_the_loop_run(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(heartbeat_interval=1_000.0, heartbeat_timeout=2_000.0)
    count = 2 * SWEEP_SLICE + 1
    transports = [transport for _, transport in [await world.attach(f"s{n}") for n in range(count)]]
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counting = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    seen_before = turns
    await world.hub.sweep(time.monotonic() + 1_000.0)  # every socket's ping is due
    in_between = turns - seen_before
    counting.cancel()
    await eventually(lambda: all(t.pings == 1 for t in transports))

    assert in_between >= 2  # three slices: the loop ran twice while the sweep went on


async def test_the_sweep_closes_a_silent_socket_with_heartbeat_timeout(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(heartbeat_interval=0.05, heartbeat_timeout=0.15)
    _, transport = await world.attach("s1")
    opened = time.monotonic()

    await eventually(lambda: transport.close_code is not None)

    assert transport.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert time.monotonic() - opened >= 0.15
    assert transport.pings >= 1  # it was asked first


async def test_a_socket_that_answers_pings_outlives_the_heartbeat_timeout(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(heartbeat_interval=0.03, heartbeat_timeout=0.1)
    connection, transport = await world.attach("s1")
    answered = 0
    until = time.monotonic() + 0.3
    while time.monotonic() < until:
        if transport.pings > answered:
            answered = transport.pings
            await connection.heard(said({"type": "pong"}))
        await asyncio.sleep(0.005)

    assert transport.close_code is None
    assert answered >= 3


async def test_a_pong_marks_the_session_as_seen_over_a_websocket(world: World) -> None:
    connection, _ = await world.attach("s1")
    await world.presence.flush()  # the attach itself was a sighting
    assert world.presence.unflushed == 0

    await connection.heard(said({"type": "pong"}))

    assert world.presence.unflushed == 1
    assert await world.presence.flush() == 1


async def test_a_reader_that_stops_acking_a_full_window_is_closed_after_send_timeout(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(window=2, send_timeout=0.1, heartbeat_interval=10.0)
    _, transport = await world.attach_settled("s1")
    await world.delivery.send(SITE, drafts("s1", "one", "two", "three"))
    await eventually(lambda: len(transport.teasers) == 2)
    full = time.monotonic()

    await eventually(lambda: transport.close_code is not None)

    assert transport.close_code == CloseCode.TRY_AGAIN_LATER
    assert time.monotonic() - full >= 0.09
    assert len(transport.teasers) == 2  # nothing beyond the window


def frames_reach(transport: FakeTransport, count: int) -> bool:
    return len(transport.teasers) == count


async def test_a_reader_that_keeps_acking_is_not_closed_as_too_slow(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(window=1, send_timeout=0.08, heartbeat_interval=10.0)
    connection, transport = await world.attach_settled("s1")
    sent = await world.delivery.send(SITE, drafts("s1", *(f"m{i}" for i in range(10))))
    for count in range(1, 11):
        await eventually(partial(frames_reach, transport, count))
        await asyncio.sleep(0.01)  # slower than at once, faster than send_timeout
        await connection.heard(said({"type": "ack", "id": transport.teasers[-1]["id"]}))

    assert [f["id"] for f in transport.teasers] == [t.id for t in sent]
    assert transport.close_code is None


async def test_a_send_stuck_on_a_reader_that_stopped_reading_is_closed_after_send_timeout(
    worlds: Callable[..., Awaitable[World]],
) -> None:
    world = await worlds(send_timeout=0.1, heartbeat_interval=10.0)
    _, transport = await world.attach_settled("s1")
    transport.stall()
    [teaser] = await world.delivery.send(SITE, drafts("s1", "never read"))

    await eventually(lambda: transport.close_code is not None)

    assert transport.close_code == CloseCode.TRY_AGAIN_LATER
    assert transport.teasers == []
    stored = await world.store.get(SITE, teaser.id)
    assert stored is not None and stored.consumed_at is None


async def test_open_sockets_counts_attached_and_detached_sockets(world: World) -> None:
    first, _ = await world.attach("s1")
    await world.attach("s2")
    assert world.hub.open_sockets == 2
    assert "teaser_open_sockets 2" in world.metrics.render()

    await world.hub.detach(first)

    assert world.hub.open_sockets == 1
