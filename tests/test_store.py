"""TeaserStore on SQLite and PostgreSQL: hand-over is atomic, ordered, and expiry-aware."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.models import teaser_messages
from realtime.store import TeaserStore
from realtime.teaser import Draft, Priority, Status


class FakeClock:
    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


SITE = "shop"


def drafts(session: str, *texts: str, expires_in_ms: int = 300_000) -> list[Draft]:
    return [Draft(session, text, Priority.MANUAL, expires_in_ms) for text in texts]


async def test_sent_messages_are_polled_once_in_send_order(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    await store.send(SITE, drafts("s1", "first", "second", "third"))

    first_poll = await store.consume_pending(SITE, "s1")
    second_poll = await store.consume_pending(SITE, "s1")

    assert [t.message for t in first_poll] == ["first", "second", "third"]
    assert second_poll == []


async def test_a_message_waits_for_a_session_that_never_connected(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    [sent] = await store.send(SITE, drafts("later", "hello"))

    assert (await store.get(SITE, sent.id)).status(store.clock()) is Status.PENDING  # type: ignore[union-attr]
    assert [t.id for t in await store.consume_pending(SITE, "later")] == [sent.id]


async def test_sessions_and_sites_do_not_see_each_others_messages(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    await store.send(SITE, drafts("s1", "for s1"))
    await store.send("other", drafts("s1", "for other site"))

    assert await store.consume_pending(SITE, "s2") == []
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == ["for s1"]
    assert [t.message for t in await store.consume_pending("other", "s1")] == ["for other site"]


async def test_an_expired_message_is_never_handed_out(engine: AsyncEngine) -> None:
    clock = FakeClock()
    store = TeaserStore(engine, clock=clock)
    [teaser] = await store.send(SITE, drafts("s1", "soon gone", expires_in_ms=1000))
    clock.advance(1000)

    assert await store.consume_pending(SITE, "s1") == []
    assert await store.claim_pending(SITE, "s1", "socket-a") == []
    assert (await store.get(SITE, teaser.id)).status(clock()) is Status.EXPIRED  # type: ignore[union-attr]


async def test_a_claimed_message_is_consumed_only_by_its_holders_ack(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    [teaser] = await store.send(SITE, drafts("s1", "hi"))

    assert [t.id for t in await store.claim_pending(SITE, "s1", "socket-a")] == [teaser.id]
    assert await store.consume_pending(SITE, "s1") == []  # leased to socket-a
    assert await store.ack(SITE, "s1", teaser.id, "socket-b") is False
    assert await store.ack(SITE, "s1", teaser.id, "socket-a") is True
    assert await store.ack(SITE, "s1", teaser.id, "socket-a") is False

    stored = await store.get(SITE, teaser.id)
    assert stored is not None and stored.status(store.clock()) is Status.DELIVERED
    assert stored.delivered_via == "websocket"


async def test_a_released_claim_goes_to_the_next_poll(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    await store.send(SITE, drafts("s1", "one", "two"))
    await store.claim_pending(SITE, "s1", "socket-a")

    assert await store.release("socket-a") == 2
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == ["one", "two"]


async def test_an_unacked_claim_is_handed_out_again_when_its_lease_runs_out(
    engine: AsyncEngine,
) -> None:
    clock = FakeClock()
    store = TeaserStore(engine, clock=clock, lease_ms=30_000)
    await store.send(SITE, drafts("s1", "hi"))
    await store.claim_pending(SITE, "s1", "crashed-worker-socket")

    clock.advance(29_999)
    assert await store.consume_pending(SITE, "s1") == []
    clock.advance(1)
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == ["hi"]


async def test_racing_polls_and_sockets_never_both_get_a_message(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    sent = await store.send(SITE, drafts("s1", *[f"m{i}" for i in range(40)]))

    async def socket(holder: str) -> list[str]:
        got: list[str] = []
        for _ in range(10):
            got += [t.id for t in await store.claim_pending(SITE, "s1", holder)]
        return got

    async def poller() -> list[str]:
        got: list[str] = []
        for _ in range(10):
            got += [t.id for t in await store.consume_pending(SITE, "s1")]
        return got

    results = await asyncio.gather(socket("a"), socket("b"), poller(), poller())
    handed_out = [message_id for result in results for message_id in result]

    assert sorted(handed_out) == sorted(t.id for t in sent)  # each exactly once


async def test_bulk_send_is_all_in_one_transaction_in_order(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    sent = await store.send(SITE, drafts("s1", *[f"m{i}" for i in range(100)]))

    assert [t.seq for t in sent] == sorted(t.seq for t in sent)
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == [
        f"m{i}" for i in range(100)
    ]


async def test_purge_counts_unseen_expiries_and_deletes_past_retention(
    engine: AsyncEngine,
) -> None:
    clock = FakeClock()
    store = TeaserStore(engine, clock=clock)
    await store.send(SITE, drafts("s1", "short", expires_in_ms=1000))
    await store.send(SITE, drafts("s1", "long", expires_in_ms=600_000))
    clock.advance(2000)

    report = await store.purge_expired(retention_ms=500)

    assert (report.expired, report.deleted) == (1, 1)
    async with engine.connect() as connection:
        remaining = (
            await connection.execute(select(func.count()).select_from(teaser_messages))
        ).scalar_one()
    assert remaining == 1
    assert (await store.purge_expired(retention_ms=500)).expired == 0
