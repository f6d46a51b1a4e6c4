"""Transactions: a unit of work runs whole, on SQLite in the store's own thread (a write
that would not wait, on the event loop) and on PostgreSQL on the pool, and commits only if
it returns."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

import realtime.delivery.transactions
from realtime.delivery.transactions import WRITER_CHECKPOINT_PAGES, Transactions, transactions_for
from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from realtime.platform.tables import session_counters


def add_counter(session_id: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(
            insert(session_counters).values(site_id="shop", session_id=session_id, last_seq=1)
        )
        return session_id

    return work


def count_counters(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(session_counters)).scalar_one())


@pytest.fixture
async def database(engine: AsyncEngine) -> AsyncIterator[Transactions]:
    database = transactions_for(engine)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def sqlite_database(sqlite_url: str) -> AsyncIterator[Transactions]:
    engine = create_engine(sqlite_url)
    await upgrade(engine)
    database = transactions_for(engine)
    try:
        yield database
    finally:
        await database.close()
        await engine.dispose()


async def test_work_that_returns_is_committed_and_seen_by_the_engine(
    engine: AsyncEngine, database: Transactions
) -> None:
    written = await database.write(add_counter("s1"))
    seen = await database.read(count_counters)
    async with engine.connect() as connection:
        seen_by_engine = (
            await connection.execute(select(func.count()).select_from(session_counters))
        ).scalar_one()

    assert written == "s1"
    assert seen == 1 and seen_by_engine == 1


async def test_work_that_raises_leaves_nothing_behind(database: Transactions) -> None:
    def half_done(connection: Connection) -> None:
        connection.execute(
            insert(session_counters).values(site_id="shop", session_id="s1", last_seq=1)
        )
        raise LookupError("changed its mind")

    with pytest.raises(LookupError, match="changed its mind"):
        await database.write(half_done)

    assert await database.read(count_counters) == 0


async def test_on_sqlite_work_runs_in_one_thread_and_a_lone_brief_write_on_the_event_loop(
    sqlite_database: Transactions,
) -> None:
    threads = {await sqlite_database.read(lambda _: threading.get_ident()) for _ in range(5)}
    threads.add(await sqlite_database.write(lambda _: threading.get_ident()))
    brief = await sqlite_database.write(lambda _: threading.get_ident(), brief=True)

    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert brief == threading.get_ident()  # no trip to the thread and back


async def test_on_sqlite_a_brief_write_given_while_the_thread_is_busy_waits_its_turn_there(
    sqlite_database: Transactions,
) -> None:
    done: list[str] = []

    def slow_read(connection: Connection) -> int:
        time.sleep(0.1)
        done.append("read")
        return threading.get_ident()

    def write(name: str) -> Callable[[Connection], int]:
        def work(connection: Connection) -> int:
            add_counter(name)(connection)
            done.append(name)
            return threading.get_ident()

        return work

    reading = asyncio.create_task(sqlite_database.read(slow_read))
    await asyncio.sleep(0)  # the read is the thread's now
    first, second = await asyncio.gather(
        sqlite_database.write(write("first"), brief=True),
        sqlite_database.write(write("second"), brief=True),
    )

    assert done == ["read", "first", "second"]  # none overtook what was given before it
    assert first == second == await reading != threading.get_ident()


async def test_on_sqlite_a_brief_write_meeting_another_writer_waits_in_the_thread(
    sqlite_database: Transactions, sqlite_url: str
) -> None:
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    writing = asyncio.create_task(sqlite_database.write(add_counter("after"), brief=True))
    started = time.monotonic()
    for _ in range(10):
        await asyncio.sleep(0.01)  # the loop goes on meanwhile
    waited_on_loop = time.monotonic() - started
    still_waiting = not writing.done()
    other.execute("COMMIT")
    other.close()

    assert await writing == "after"
    assert still_waiting and waited_on_loop < 0.5
    assert await sqlite_database.read(count_counters) == 1


async def test_on_sqlite_a_unit_of_work_holds_the_write_lock_from_its_start(
    sqlite_database: Transactions, sqlite_url: str
) -> None:
    # Were the lock taken only at the first write, a unit that reads first would fail
    # outright if another connection wrote in between.
    path = sqlite_url.split("///", 1)[1]
    other_writer_refused: list[str] = []

    def reads_then_writes(connection: Connection) -> int:
        before = count_counters(connection)
        other = sqlite3.connect(path, timeout=0.05)
        try:
            other.execute("INSERT INTO session_counters VALUES ('shop', 'other', 1)")
            other.commit()
        except sqlite3.OperationalError as exc:
            other_writer_refused.append(str(exc))
        finally:
            other.close()
        add_counter("mine")(connection)
        return before

    before = await sqlite_database.write(reads_then_writes)
    after = await sqlite_database.read(count_counters)

    assert other_writer_refused == ["database is locked"]
    assert (before, after) == (0, 1)


async def test_on_sqlite_a_writer_waits_for_another_connections_write_lock(
    sqlite_database: Transactions, sqlite_url: str
) -> None:
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO session_counters VALUES ('shop', 'first', 1)")
    waiting = asyncio.create_task(sqlite_database.write(add_counter("second")))
    await asyncio.sleep(0.3)
    blocked = not waiting.done()
    other.execute("COMMIT")
    other.close()

    assert blocked
    assert await asyncio.wait_for(waiting, 5) == "second"
    assert await sqlite_database.read(count_counters) == 2


async def test_the_sqlite_thread_waits_at_most_a_millisecond_for_the_gil(sqlite_url: str) -> None:
    sys.setswitchinterval(0.005)  # Python's default: under load every statement waited it
    engine = create_engine(sqlite_url)
    await upgrade(engine)
    database = transactions_for(engine)
    try:
        assert sys.getswitchinterval() <= 0.001
        assert await database.write(add_counter("s1")) == "s1"
    finally:
        await database.close()
        await engine.dispose()


def checkpointed_counters(database_file: str, copy: Path) -> int:
    """Counters in the database file alone: what checkpoints have copied out of the log."""
    shutil.copyfile(database_file, copy)
    with closing(sqlite3.connect(copy)) as connection:
        return int(connection.execute("SELECT count(*) FROM session_counters").fetchone()[0])


async def test_on_sqlite_the_log_reaches_the_database_file_by_checkpoints_off_the_writer(
    sqlite_database: Transactions, sqlite_url: str, tmp_path: Path
) -> None:
    database_file = sqlite_url.split("///", 1)[1]
    await sqlite_database.checkpoint()  # the schema, written by the migration
    await sqlite_database.write(add_counter("s1"))

    def autocheckpoint(connection: Connection) -> int:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    before = checkpointed_counters(database_file, tmp_path / "before.db")
    await sqlite_database.checkpoint()
    after = checkpointed_counters(database_file, tmp_path / "after.db")

    # The writer checkpoints only to bound the log: far later than SQLite's 1,000 pages.
    assert await sqlite_database.write(autocheckpoint) == WRITER_CHECKPOINT_PAGES > 1000
    assert (before, after) == (0, 1)


async def test_on_sqlite_the_log_starts_over_under_steady_writes(
    sqlite_database: Transactions, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A passive checkpoint alone never finds the moment between two writes when the log
    # could start over: it grew by every page written (7,614 pages for 3,427 writes).
    monkeypatch.setattr(realtime.delivery.transactions, "RESTART_PAGES", 100)
    log = Path(sqlite_url.split("///", 1)[1] + "-wal")
    writing = True

    async def write_steadily() -> int:
        written = 0
        while writing:
            await sqlite_database.write(add_counter(f"s{written}"))
            written += 1
        return written

    writer = asyncio.create_task(write_steadily())
    for _ in range(20):
        await asyncio.sleep(0.05)
        await sqlite_database.checkpoint()
    writing = False
    written = await writer

    # Each write adds two pages or more to the log.
    assert log.stat().st_size // 4096 < written / 2
