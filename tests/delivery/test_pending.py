"""The pending index only ever says "maybe": markers live until their message's expiry, are
rebuilt from the store, and any doubt (a marker not shared, a deaf broker) means "maybe"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery import pending as pending_module
from realtime.delivery.pending import (
    MemoryPendingIndex,
    PendingIndex,
    PendingSessions,
    SharedPendingIndex,
)
from realtime.delivery.store import TeaserStore
from realtime.delivery.teaser import Draft
from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from tests.delivery.fakes import SITE, FakeBroker, FakeClock, eventually


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def broker() -> AsyncIterator[FakeBroker]:
    broker = FakeBroker()
    await broker.connect()
    yield broker
    await broker.disconnect()


@pytest.fixture
async def store(sqlite_engine: AsyncEngine, clock: FakeClock) -> AsyncIterator[TeaserStore]:
    store = TeaserStore(sqlite_engine, clock=clock)
    yield store
    await store.close()


class Started:
    """PendingSessions made and started for a test, and stopped after it."""

    def __init__(self, engine: AsyncEngine, broker: FakeBroker, clock: FakeClock) -> None:
        self.engine, self.broker, self.clock = engine, broker, clock
        self.started: list[PendingSessions] = []

    async def __call__(self, index: PendingIndex | None = None) -> PendingSessions:
        pending = self.made(index)
        await pending.start()
        return pending

    def made(self, index: PendingIndex | None = None) -> PendingSessions:
        index = index or MemoryPendingIndex(self.clock)
        pending = PendingSessions(index, self.engine, self.broker, self.clock)
        self.started.append(pending)
        return pending


@pytest.fixture
async def sessions(
    sqlite_engine: AsyncEngine, broker: FakeBroker, clock: FakeClock
) -> AsyncIterator[Started]:
    started = Started(sqlite_engine, broker, clock)
    yield started
    for pending in started.started:
        await pending.stop()


# --- The in-memory index ----------------------------------------------------------------


async def test_a_marker_says_maybe_until_its_messages_expiry(clock: FakeClock) -> None:
    index = MemoryPendingIndex(clock)
    await index.mark([(SITE, "s1", clock() + 1_000)])

    assert index.may_have(SITE, "s1")
    assert not index.may_have(SITE, "s2")
    assert not index.may_have("other-site", "s1")
    clock.advance(999)
    assert index.may_have(SITE, "s1")
    clock.advance(1)
    assert not index.may_have(SITE, "s1")


async def test_a_marker_is_never_shortened_by_a_sooner_one(clock: FakeClock) -> None:
    index = MemoryPendingIndex(clock)
    await index.mark([(SITE, "s1", clock() + 10_000)])
    index.restore([(SITE, "s1", clock() + 10)])

    clock.advance(5_000)

    assert index.may_have(SITE, "s1")


def test_prune_drops_expired_markers_and_keeps_live_ones(clock: FakeClock) -> None:
    index = MemoryPendingIndex(clock)
    start = clock()
    index.restore([(SITE, "short", start + 1_000), (SITE, "long", start + 60_000)])
    clock.advance(2_000)

    index.prune()
    # Back before the first expiry: only a marker that was dropped can say no now.
    clock.now = start

    assert not index.may_have(SITE, "short")
    assert index.may_have(SITE, "long")


def test_forget_drops_every_marker(clock: FakeClock) -> None:
    index = MemoryPendingIndex(clock)
    index.restore([(SITE, "s1", clock() + 1_000), (SITE, "s2", clock() + 1_000)])

    index.forget()

    assert not index.may_have(SITE, "s1") and not index.may_have(SITE, "s2")


@pytest.mark.parametrize(
    "garbage",
    [
        "not json",
        "",
        "null",
        "42",
        '"text"',
        '{"site": "s"}',
        "[1, 2]",
        '[["shop", "s1"]]',
        '[["shop", "s1", "soon"]]',
        '[["shop", "s1", null]]',
        '[["shop", "s1", 1, 2]]',
    ],
)
def test_a_shared_index_ignores_garbage_it_hears(
    broker: FakeBroker, clock: FakeClock, garbage: str
) -> None:
    index = SharedPendingIndex(broker, clock)

    index.heard(garbage)
    index.heard(f'[["{SITE}", "s1", {clock() + 1_000}]]')

    assert index.may_have(SITE, "s1")
    assert not index.may_have(SITE, "s2")


async def test_a_shared_index_broadcasts_its_markers_to_every_worker(
    sessions: Started, broker: FakeBroker, clock: FakeClock
) -> None:
    here = await sessions(SharedPendingIndex(broker, clock))
    there = await sessions(SharedPendingIndex(broker, clock))

    await here.mark([(SITE, "s1", clock() + 1_000)])

    assert await here.may_have(SITE, "s1")
    await eventually(lambda: there.may_have(SITE, "s1"))
    assert not await there.may_have(SITE, "s2")


# --- PendingSessions: kept honest -------------------------------------------------------


async def test_rebuild_restores_markers_of_waiting_messages_from_the_store(
    sessions: Started, store: TeaserStore, clock: FakeClock
) -> None:
    await store.send(SITE, [Draft("waiting", "hi"), Draft("consumed", "hi")])
    await store.send(SITE, [Draft("expired", "hi", expires_in_ms=1_000)])
    await store.consume_pending(SITE, "consumed")
    clock.advance(1_000)

    pending = await sessions()

    assert await pending.may_have(SITE, "waiting")
    assert not await pending.may_have(SITE, "consumed")
    assert not await pending.may_have(SITE, "expired")
    assert not await pending.may_have(SITE, "never-sent")


async def test_may_have_says_maybe_until_the_index_is_trusted(
    tmp_path: Path, broker: FakeBroker, clock: FakeClock
) -> None:
    # A database not migrated yet: the rebuild fails, so nothing can be ruled out.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}")
    pending = PendingSessions(MemoryPendingIndex(clock), engine, broker, clock)
    try:
        assert await pending.may_have(SITE, "anyone")
        await upgrade(engine)
        assert await pending.may_have(SITE, "anyone")  # it tries again only now and then

        await pending.rebuild()

        assert not await pending.may_have(SITE, "anyone")
    finally:
        await engine.dispose()


async def test_while_the_broker_is_deaf_every_session_may_have_something(
    sessions: Started, broker: FakeBroker
) -> None:
    pending = await sessions()
    assert not await pending.may_have(SITE, "s1")

    broker.backend.hears_others = False
    assert await pending.may_have(SITE, "s1")

    broker.backend.hears_others = True
    assert not await pending.may_have(SITE, "s1")


async def test_a_marker_not_shared_makes_every_poll_read_the_store_and_pauses_marking(
    sessions: Started,
    broker: FakeBroker,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = SharedPendingIndex(broker, clock)
    pending = await sessions(index)
    assert not await pending.may_have(SITE, "unmarked")
    broker.backend.link_up = False

    with caplog.at_level(logging.WARNING, logger="teaser.pending"):
        await pending.mark([(SITE, "s1", clock() + 1_000)])

    assert "pending index not updated" in caplog.text
    assert await pending.may_have(SITE, "unmarked")
    broker.backend.link_up = True
    published = len(broker.backend.published)
    await pending.mark([(SITE, "s2", clock() + 1_000)])
    assert len(broker.backend.published) == published  # paused: not even tried
    assert not index.may_have(SITE, "s2")


async def test_after_the_pause_the_next_poll_rebuilds_the_index_and_trusts_it_again(
    sessions: Started,
    broker: FakeBroker,
    store: TeaserStore,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pending_module, "PAUSE_AFTER_FAILURE", 0.05)
    pending = await sessions(SharedPendingIndex(broker, clock))
    broker.backend.link_up = False
    await pending.mark([(SITE, "s1", clock() + 1_000)])
    broker.backend.link_up = True
    [teaser] = await store.send(SITE, [Draft("s2", "sent during the pause")])
    await pending.mark([(SITE, "s2", teaser.expires_at)])  # skipped: paused

    await asyncio.sleep(0.06)

    assert not await pending.may_have(SITE, "unmarked")  # trusted again
    assert await pending.may_have(SITE, "s2")  # the rebuild found it in the store


async def test_a_resync_rebuilds_the_index_from_the_store(
    sessions: Started, broker: FakeBroker, store: TeaserStore
) -> None:
    pending = await sessions()
    # A marker broadcast while this worker's link was down never reached it.
    await store.send(SITE, [Draft("s1", "missed")])
    assert not await pending.may_have(SITE, "s1")

    broker.backend.reconnected()

    await eventually(lambda: pending.may_have(SITE, "s1"))


async def test_a_second_resync_soon_after_the_first_still_rebuilds_the_index(
    sessions: Started, broker: FakeBroker, store: TeaserStore
) -> None:
    pending = await sessions()
    await store.send(SITE, [Draft("s1", "missed in the first outage")])
    broker.backend.reconnected()
    await eventually(lambda: pending.may_have(SITE, "s1"))

    # The link drops again: another worker's marker for s2 is lost, then RESYNC once back.
    await store.send(SITE, [Draft("s2", "missed in the second outage")])
    broker.backend.reconnected()

    await eventually(lambda: pending.may_have(SITE, "s2"), timeout=0.3)
