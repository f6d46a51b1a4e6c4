"""Delivery stores a send before anything else and numbers it per session, replays a retried
send, and answers polls from the store only when the pending index says something may wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.store import IdempotencyKey
from realtime.delivery.teaser import Draft
from realtime.fanout.channels import session_channel
from realtime.platform.errors import InvalidInput
from tests.delivery.fakes import SITE, World, drafts, eventually, small_world


@pytest.fixture
async def world(sqlite_engine: AsyncEngine) -> AsyncIterator[World]:
    async with small_world(sqlite_engine) as world:
        yield world


async def test_send_stores_first_and_answers_with_teasers_numbered_per_session(
    world: World,
) -> None:
    sent = await world.delivery.send(
        SITE, [Draft("a", "a1"), Draft("b", "b1"), Draft("a", "a2"), Draft("a", "a3")]
    )

    assert [(t.session_id, t.session_seq) for t in sent] == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    for teaser in sent:
        assert await world.store.get(SITE, teaser.id) == teaser
    assert await world.store.position(SITE, "a") == 3
    assert world.metrics.sent.value == 4


async def test_a_send_to_a_session_without_a_socket_here_marks_it_and_wakes_it_by_broker(
    world: World,
) -> None:
    assert not await world.pending.may_have(SITE, "s1")

    [teaser] = await world.delivery.send(SITE, drafts("s1", "hello"))

    assert teaser.leased_to is None
    assert await world.pending.may_have(SITE, "s1")
    assert world.session_wakes == [session_channel(SITE, "s1")]


async def test_a_retry_with_the_same_idempotency_key_replays_the_first_send_and_sends_nothing(
    world: World,
) -> None:
    key = IdempotencyKey("order-42", "hash-of-the-request")
    first = await world.delivery.send_once(SITE, drafts("s1", "one", "two"), key)

    again = await world.delivery.send_once(SITE, drafts("s1", "one", "two"), key)

    assert not first.replayed and again.replayed
    assert [t.id for t in again.teasers] == [t.id for t in first.teasers]
    assert await world.store.position(SITE, "s1") == 2
    assert world.metrics.sent.value == 2
    assert world.session_wakes == [session_channel(SITE, "s1")]


async def test_an_idempotency_key_reused_for_another_request_is_refused(world: World) -> None:
    await world.delivery.send_once(SITE, drafts("s1", "one"), IdempotencyKey("k", "first"))

    with pytest.raises(InvalidInput) as refused:
        await world.delivery.send_once(SITE, drafts("s1", "other"), IdempotencyKey("k", "second"))

    assert refused.value.field == "Idempotency-Key"
    assert await world.store.position(SITE, "s1") == 1


async def test_concurrent_retries_with_one_key_create_one_message_and_free_the_socket(
    world: World,
) -> None:
    connection, transport = await world.attach_settled("s1")
    key = IdempotencyKey("once", "same")

    outcomes = await asyncio.gather(
        world.delivery.send_once(SITE, drafts("s1", "hi"), key),
        world.delivery.send_once(SITE, drafts("s1", "hi"), key),
    )

    assert sorted(o.replayed for o in outcomes) == [False, True]
    assert outcomes[0].teasers[0].id == outcomes[1].teasers[0].id
    await eventually(lambda: len(transport.teasers) == 1)
    await asyncio.sleep(0.02)
    assert len(transport.teasers) == 1
    assert connection.reserved == 0
    assert connection.free == connection.timings.window - 1


async def test_a_poll_with_nothing_pending_answers_empty_without_touching_the_store(
    world: World,
) -> None:
    # Stored behind Delivery's back: the pending index was never told, so it says no.
    [hidden] = await world.store.send(SITE, drafts("s1", "unannounced"))
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    # Every engine of the process: the store runs its statements on its own connection.
    event.listen(Engine, "before_cursor_execute", record)
    try:
        polled = await world.delivery.poll(SITE, "s1")
    finally:
        event.remove(Engine, "before_cursor_execute", record)

    assert polled.teasers == [] and polled.recovered is None
    assert statements == []
    assert world.metrics.polls.value == 1
    assert [t.id for t in await world.store.consume_pending(SITE, "s1")] == [hidden.id]


async def test_a_poll_consumes_what_waits_once(world: World) -> None:
    sent = await world.delivery.send(SITE, drafts("s1", "one", "two"))

    first = await world.delivery.poll(SITE, "s1")
    second = await world.delivery.poll(SITE, "s1")

    assert [t.id for t in first.teasers] == [t.id for t in sent]
    assert second.teasers == []
    assert world.metrics.delivered_poll.value == 2
    stored = await world.store.get(SITE, sent[0].id)
    assert stored is not None and stored.delivered_via == "poll"


async def test_a_poll_with_since_merges_recovered_and_fresh_in_order_without_duplicates(
    world: World,
) -> None:
    await world.delivery.send(SITE, drafts("s1", "one", "two", "three"))
    await world.delivery.poll(SITE, "s1")  # an answer lost on the way
    await world.delivery.send(SITE, drafts("s1", "four", "five"))

    polled = await world.delivery.poll(SITE, "s1", since=1)

    assert [t.session_seq for t in polled.teasers] == [2, 3, 4, 5]
    assert [t.message for t in polled.teasers] == ["two", "three", "four", "five"]
    assert polled.recovered is True
    assert (await world.delivery.poll(SITE, "s1", since=5)).teasers == []


async def test_a_poll_does_not_resend_what_the_client_says_it_has_seen(world: World) -> None:
    await world.delivery.send(SITE, drafts("s1", "one", "two", "three"))

    polled = await world.delivery.poll(SITE, "s1", since=2)

    assert [t.session_seq for t in polled.teasers] == [3]
    assert await world.store.consume_pending(SITE, "s1") == []  # the seen ones are consumed


async def test_a_poll_from_an_unknown_position_replays_nothing_and_says_so(world: World) -> None:
    await world.delivery.send(SITE, drafts("s1", "one"))
    await world.delivery.poll(SITE, "s1")

    polled = await world.delivery.poll(SITE, "s1", since=99)

    assert polled.teasers == [] and polled.recovered is False


async def test_a_message_bound_to_a_page_is_not_handed_to_a_socket_but_waits_for_its_page(
    world: World,
) -> None:
    home, home_transport = await world.attach_settled("s1", path="/home")

    [teaser] = await world.delivery.send(SITE, drafts("s1", "cart only", only_on_path="/cart"))
    await asyncio.sleep(0.05)  # the broker's wake reached the socket, whose claim found nothing

    assert teaser.leased_to is None
    assert home_transport.teasers == []
    assert home.reserved == 0
    assert (await world.delivery.poll(SITE, "s1", path="/home")).teasers == []
    _, cart_transport = await world.attach("s1", path="/cart")
    await eventually(lambda: len(cart_transport.teasers) == 1)
    assert cart_transport.teasers[0]["id"] == teaser.id


async def test_a_poll_on_a_matching_page_gets_a_message_bound_to_it(world: World) -> None:
    [teaser] = await world.delivery.send(SITE, drafts("s1", "chairs", only_on_path="/chairs*"))

    assert (await world.delivery.poll(SITE, "s1", path="/tables")).teasers == []
    polled = await world.delivery.poll(SITE, "s1", path="/chairs/oak")

    assert [t.id for t in polled.teasers] == [teaser.id]
