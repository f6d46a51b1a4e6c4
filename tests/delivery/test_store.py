"""TeaserStore on SQLite and PostgreSQL: hand-over is atomic, ordered, and expiry-aware."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.store import DuplicateSend, IdempotencyKey, LeasingSocket, TeaserStore
from realtime.delivery.teaser import Draft, Priority, Status
from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from realtime.platform.tables import teaser_messages
from tests.delivery.fakes import FakeClock

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


async def test_two_sockets_of_one_session_woken_together_never_lease_a_message_twice(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    sent = await store.send(SITE, drafts("s1", *[f"m{i}" for i in range(5)]))
    await store.send(SITE, drafts("s2", "other"))

    first, second, other = await asyncio.gather(
        store.claim_pending(SITE, "s1", "socket-a", limit=3),
        store.claim_pending(SITE, "s1", "socket-b"),
        store.claim_pending(SITE, "s2", "socket-c"),
    )

    leased = [t.id for t in first + second]
    assert sorted(leased) == sorted(t.id for t in sent)  # each message once, none lost
    assert [t.message for t in first] == ["m0", "m1", "m2"]
    assert [t.message for t in other] == ["other"]


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


async def test_a_send_larger_than_one_statement_is_stored_whole_and_numbered(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    # More rows and more sessions than one statement of the SQLite writes takes (500 each).
    many = [draft for i in range(600) for draft in drafts(f"s{i}", "one", "two")]

    sent = await store.send(SITE, many)

    async with engine.connect() as connection:
        stored = {
            row.id: (row.seq, row.session_seq)
            for row in await connection.execute(
                select(teaser_messages.c.id, teaser_messages.c.seq, teaser_messages.c.session_seq)
            )
        }
    assert {t.id: (t.seq, t.session_seq) for t in sent} == stored
    assert [t.session_seq for t in sent] == [1, 2] * 600


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


async def test_concurrent_sends_are_written_together_and_numbered_without_gaps(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    commits = 0

    def count_commit(*_: object) -> None:
        nonlocal commits
        commits += 1

    # Every engine of the process: on SQLite the store writes on a connection of its own.
    event.listen(Engine, "commit", count_commit)
    try:
        sent = await asyncio.gather(
            *(store.send(SITE, drafts(f"s{i % 3}", f"m{i}")) for i in range(30))
        )
    finally:
        event.remove(Engine, "commit", count_commit)

    assert 0 < commits < 30  # group commit: sends that waited together shared a transaction
    for session in ("s0", "s1", "s2"):
        numbers = [t.session_seq for [t] in sent if t.session_id == session]
        assert sorted(numbers) == list(range(1, 11))
        polled = await store.consume_pending(SITE, session)
        assert [t.session_seq for t in polled] == list(range(1, 11))


async def test_a_reused_idempotency_key_fails_only_its_own_send_in_a_batch(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    key = IdempotencyKey("order-7", "hash-a")
    await store.send(SITE, drafts("s1", "first"), key)

    outcomes = await asyncio.gather(
        store.send(SITE, drafts("s2", "before")),
        store.send(SITE, drafts("s1", "again"), key),
        store.send(SITE, drafts("s3", "after")),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], DuplicateSend)
    assert [t.message for t in outcomes[0]] == ["before"]  # type: ignore[union-attr]
    assert [t.message for t in outcomes[2]] == ["after"]  # type: ignore[union-attr]
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == ["first"]


async def test_a_send_to_a_local_socket_is_stored_leased_to_it_up_to_its_room(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    sent = await store.send(
        SITE, drafts("s1", "a", "b", "c"), holders={"s1": LeasingSocket("socket-a", room=2)}
    )

    assert [t.leased_to for t in sent] == ["socket-a", "socket-a", None]
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == ["c"]
    assert await store.ack(SITE, "s1", sent[0].id, "socket-a") is True
    assert await store.release("socket-a") == 1  # "b": sent, never acked
    assert [t.message for t in await store.consume_pending(SITE, "s1")] == ["b"]


async def test_acks_that_arrive_together_each_get_their_own_answer(engine: AsyncEngine) -> None:
    store = TeaserStore(engine)
    await store.send(SITE, drafts("s1", "a", "b"))
    mine = await store.claim_pending(SITE, "s1", "socket-a")

    answers = await asyncio.gather(
        store.ack(SITE, "s1", mine[0].id, "socket-a"),
        store.ack(SITE, "s1", mine[1].id, "socket-a"),
        store.ack(SITE, "s1", "tm_never-sent", "socket-a"),
        store.ack(SITE, "s1", mine[0].id, "socket-a"),
    )

    assert answers == [True, True, False, False]  # a repeated ack consumes nothing


async def test_every_message_of_a_bulk_send_gets_its_own_unguessable_id(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)

    sent = await store.send(
        SITE, [*drafts("s1", *(f"m{i}" for i in range(150))), *drafts("s2", "x")]
    )

    ids = [teaser.id for teaser in sent]
    assert len(set(ids)) == len(ids) == 151
    # The millisecond of the send in hex, then 12 random bytes (96 bits), url-safe.
    assert all(re.fullmatch(r"tm_[0-9a-f]{12}[A-Za-z0-9_-]{16}", i) for i in ids)
    assert len({i[15:] for i in ids}) == 151


async def test_message_ids_sort_by_the_time_they_were_sent(engine: AsyncEngine) -> None:
    clock = FakeClock(1_764_400_000_000)
    store = TeaserStore(engine, clock=clock)

    earlier = await store.send(SITE, drafts("s1", *(f"m{i}" for i in range(50))))
    clock.advance(1)
    later = await store.send(SITE, drafts("s2", *(f"m{i}" for i in range(50))))

    assert max(t.id for t in earlier) < min(t.id for t in later)
    assert all(t.id.startswith("tm_019ace6f6c0") for t in earlier + later)


async def settled_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).where(teaser_messages.c.settled_at.is_not(None))
        return int((await connection.execute(query)).scalar_one())


async def test_settling_moves_delivered_and_expired_messages_and_leaves_waiting_ones(
    engine: AsyncEngine,
) -> None:
    clock = FakeClock()
    store = TeaserStore(engine, clock=clock)
    await store.send(SITE, drafts("s1", "delivered"))
    await store.consume_pending(SITE, "s1")
    await store.send(SITE, drafts("s2", "expires", expires_in_ms=1000))
    await store.send(SITE, drafts("s3", "waits", expires_in_ms=600_000))
    clock.advance(1000)

    assert await store.settle() == 2
    assert await store.settle() == 0
    assert await settled_count(engine) == 2
    assert [t.message for t in await store.consume_pending(SITE, "s3")] == ["waits"]


async def test_a_settled_message_is_still_recovered_and_numbered_after(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    await store.send(SITE, drafts("s1", "one", "two"))
    await store.consume_pending(SITE, "s1")  # the answer is lost on the way
    await store.settle()
    [three] = await store.send(SITE, drafts("s1", "three"))

    recovered = await store.recover(SITE, "s1", since=0)

    assert [t.message for t in recovered or []] == ["one", "two"]
    assert three.session_seq == 3
    assert await store.position(SITE, "s1") == 3


async def test_a_settled_session_keeps_its_number_until_its_last_message_is_purged(
    engine: AsyncEngine,
) -> None:
    clock = FakeClock()
    store = TeaserStore(engine, clock=clock)
    await store.send(SITE, drafts("s1", "gone soon", expires_in_ms=1000))
    await store.send(SITE, drafts("s1", "kept", expires_in_ms=600_000))
    await store.consume_pending(SITE, "s1")
    clock.advance(2000)
    await store.settle()

    await store.purge_expired(retention_ms=500)

    assert await store.position(SITE, "s1") == 2  # "kept" still holds the counter
    [next_one] = await store.send(SITE, drafts("s1", "next"))
    assert next_one.session_seq == 3


@pytest.mark.parametrize("texts", [("alone",), ("one", "of", "three")], ids=["one", "bulk"])
async def test_a_send_whose_insert_meets_its_own_ids_is_done_not_failed(
    postgres_url: str, texts: tuple[str, ...]
) -> None:
    """A first try cut off with its connection can commit after the second try looked for
    its ids; that try's insert then meets them. Here the first try is a real send whose
    rows the second reuses, ids and all. (PostgreSQL: a SQLite file has no connection to
    lose.)"""
    engine = create_engine(postgres_url)
    await upgrade(engine)
    store = TeaserStore(engine)
    first_rows: list[list[dict[str, Any]]] = []
    choose = store._rows

    def same_rows(request: Any, now: int) -> list[dict[str, Any]]:
        if not first_rows:
            first_rows.append(choose(request, now))
        return [dict(row) for row in first_rows[0]]

    store._rows = same_rows  # type: ignore[method-assign]
    first = await store.send(SITE, drafts("s1", *texts))
    again = await store.send(SITE, drafts("s1", *texts))
    polled = await store.consume_pending(SITE, "s1")

    await engine.dispose()

    assert [(t.id, t.session_seq) for t in again] == [(t.id, t.session_seq) for t in first]
    assert [t.message for t in polled] == list(texts)
