"""Where the store's SQL runs: a unit of work is a plain function of a SQLAlchemy
`Connection`, and a `Transactions` runs it to completion in one transaction.

On SQLite the work runs in one dedicated thread, on that thread's own connection: a whole
batch of statements then costs one trip between the event loop and the database's thread.
Through the aiosqlite adapter each statement made four (cursor, execute, fetch, close).
A brief write (a lone send, claim, poll or batch of acks) that finds the thread idle and
the write lock free runs on the event loop instead, with no trip at all.
On PostgreSQL the work runs on the async pool, each statement awaited by SQLAlchemy. Work
of a single statement needs no transaction around it there: `autocommit` saves the BEGIN
and COMMIT round trips, three trips down to one. Work that meets a lost connection runs
once more on a fresh one; if that fails too, the database is unavailable (a 503).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.database import SQLITE_LOCK_WAIT, is_disconnect, tune_sqlite
from realtime.platform.errors import StoreUnavailable

Result = TypeVar("Result")
# The most sends, acks or claims a write may carry and still be brief.
BRIEF_ROWS = 32
WRITE_LOCK_RETRY = 0.0005
# How long a thread that wants the GIL waits before it asks the holder to let go; Python's
# default is 5 ms. The store's thread gives up the GIL at every SQLite call and must win it
# back from a busy event loop each time, so under load each statement waited that long.
GIL_SWITCH_INTERVAL = 0.001
# SQLite's default is 1,000 pages (4 MB): a checkpoint, with its fsyncs, every few hundred
# commits under load. The background checkpoint restarts the log long before this; the
# writer's own checkpoint only bounds it (at about 40 MB) should that one fall behind.
WRITER_CHECKPOINT_PAGES = 10_000
# Once the log is this long (8 MB), the background checkpoint has the next writer start it
# over from the beginning, so that the log stays short without the writer copying it.
RESTART_PAGES = 2_000
# How long a restarting checkpoint waits for the writer, and then for readers, before it
# gives up until next time: meanwhile new writers wait for it.
RESTART_WAIT_MS = 50
Work = Callable[[Connection], Result]
Runner = Callable[[Work[Result]], Awaitable[Result]]


class Transactions(Protocol):
    """Where the connection to the database can be lost (PostgreSQL), work that met the
    loss runs once more on a fresh connection: `work` itself, or `again` where running
    `work` twice would not be the same. The first try may have committed with only its
    answer lost; `again` must then find what it wrote instead of writing it twice. A
    second loss raises StoreUnavailable."""

    async def write(
        self, work: Work[Result], again: Work[Result] | None = None, *, brief: bool = False
    ) -> Result:
        """Run `work` in a transaction that commits when it returns. `brief`: it touches a
        few rows (a poll or a claim of one session, up to BRIEF_ROWS sends or acks), so on
        SQLite it may run on the event loop."""
        ...

    async def autocommit(
        self, work: Work[Result], again: Work[Result] | None = None, *, brief: bool = False
    ) -> Result:
        """Run `work` that issues one statement, which commits by itself."""
        ...

    async def read(self, work: Work[Result]) -> Result: ...

    async def checkpoint(self) -> None:
        """Copy what the write-ahead log holds into the database file, where there is one
        to copy (SQLite's WAL); nothing elsewhere."""
        ...

    async def close(self) -> None: ...


def transactions_for(engine: AsyncEngine) -> Transactions:
    if engine.dialect.name == "sqlite":
        return ThreadTransactions(engine)
    return PooledTransactions(engine)


class PooledTransactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # The same pool; a connection taken through it is in autocommit until it goes back.
        self._autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def write(
        self, work: Work[Result], again: Work[Result] | None = None, *, brief: bool = False
    ) -> Result:
        return await self._twice(self._in_transaction, work, again or work)

    async def autocommit(
        self, work: Work[Result], again: Work[Result] | None = None, *, brief: bool = False
    ) -> Result:
        return await self._twice(self._in_autocommit, work, again or work)

    async def read(self, work: Work[Result]) -> Result:
        # Reading twice is reading once.
        return await self._twice(self._connected, work, work)

    async def _twice(self, run: Runner[Result], work: Work[Result], again: Work[Result]) -> Result:
        try:
            return await run(work)
        except Exception as exc:
            if not is_disconnect(exc):
                raise
        # SQLAlchemy threw the broken connection away, and with it every connection the
        # pool opened before: this one is new.
        try:
            return await run(again)
        except Exception as exc:
            if is_disconnect(exc):
                raise StoreUnavailable(
                    "the database is unreachable; try again shortly", code="database_unavailable"
                ) from exc
            raise

    async def _in_transaction(self, work: Work[Result]) -> Result:
        async with self._engine.begin() as connection:
            return await connection.run_sync(work)

    async def _in_autocommit(self, work: Work[Result]) -> Result:
        async with self._autocommit_engine.connect() as connection:
            return await connection.run_sync(work)

    async def _connected(self, work: Work[Result]) -> Result:
        async with self._engine.connect() as connection:
            return await connection.run_sync(work)

    async def checkpoint(self) -> None:
        """PostgreSQL checkpoints by itself."""

    async def close(self) -> None:
        """The pool belongs to the engine, which its owner disposes."""


class ThreadTransactions:
    """One connection, used by one thread at a time (its own, or the event loop's for a
    brief write while its own has nothing): SQLite has one writer anyway, so queueing here
    costs nothing that SQLite would not make a second connection wait for."""

    def __init__(self, engine: AsyncEngine) -> None:
        url = engine.url.set(drivername="sqlite+pysqlite")
        # Used by its thread, and by the event loop while the thread has nothing (below).
        self._engine: Engine = create_sync_engine(
            url,
            connect_args={"timeout": SQLITE_LOCK_WAIT, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )
        event.listen(self._engine, "connect", _own_transactions)
        event.listen(self._engine, "begin", _begin)
        self._inline_engine = self._engine.execution_options(teaser_inline=True)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teaser-sqlite")
        # Units given to the thread and not yet done there (counted down by the thread).
        self._queued = 0
        self._queued_lock = threading.Lock()
        # Checkpoints run apart, on a connection and a thread of their own (see checkpoint).
        self._checkpoints = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="teaser-sqlite-checkpoint"
        )
        self._checkpointer: sqlite3.Connection | None = None
        self._path = engine.url.database or ""
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))

    async def write(
        self, work: Work[Result], again: Work[Result] | None = None, *, brief: bool = False
    ) -> Result:
        # A file has no connection to lose: `again` is never needed here.
        if brief:
            return await self._write_soon(work)
        return await self._run(self._write, work)

    async def autocommit(
        self, work: Work[Result], again: Work[Result] | None = None, *, brief: bool = False
    ) -> Result:
        # In this thread a transaction costs no round trip: one is as cheap as none.
        return await self.write(work, brief=brief)

    async def _write_soon(self, work: Work[Result]) -> Result:
        """A brief write the thread would start at once runs here, on the event loop, if
        the write lock is free this instant: the trip to the thread and back (~0.2 ms of
        waking threads, on a machine of two shared cores) cost a lone send more than its
        whole transaction (~0.07 ms). With the thread busy, the write queues behind its
        work, in order: a unit never overtakes one given before it (an ack, say). The
        loop never waits for the lock: if another connection holds it, the write goes to
        the thread, which waits. Only brief ones: a long write here (a bulk send's, a
        purge) would hold up every socket of the worker for its length."""
        with self._queued_lock:
            idle = self._queued == 0
            if idle:
                self._queued = 1  # the thread's turn comes after this one
        if idle:
            try:
                done = self._guarded(self._write_inline, work)
            except _WriterBusy:
                idle = False
            finally:
                self._done()
        if idle:
            # A turn for the rest of the loop, as a trip to the thread would have given:
            # a caller writing in a loop must not keep the loop to itself.
            await asyncio.sleep(0)
            return done
        return await self._run(self._write, work)

    async def read(self, work: Work[Result]) -> Result:
        return await self._run(self._read, work)

    async def checkpoint(self) -> None:
        """Copy the log into the database file, off the writer's thread. A commit that
        crossed the WAL's 1,000-page mark used to copy the pages and fsync the database
        file itself, while every send waited (up to 70 ms per time under load).

        First a passive checkpoint, which never blocks a writer. Only a writer that
        begins with every frame copied starts the log over, and under steady writes it
        never finds that moment, so once the log is long a restarting checkpoint copies
        the few frames the passive one left and makes it: writers wait for that short
        copy instead of each in turn for a long one."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checkpoints, self._checkpoint)

    def _checkpoint(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self._path, isolation_level=None)
            self._checkpointer.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
        _, log_pages, _ = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log_pages >= RESTART_PAGES:
            self._checkpointer.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    async def close(self) -> None:
        # A connection may only be closed by the thread that opened it.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._engine.dispose)
        await loop.run_in_executor(self._checkpoints, self._close_checkpointer)
        self._thread.shutdown(wait=False)
        self._checkpoints.shutdown(wait=False)

    def _close_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    async def _run(self, call: Callable[[Work[Result]], Result], work: Work[Result]) -> Result:
        with self._queued_lock:
            self._queued += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._in_thread, call, work)

    def _in_thread(self, call: Callable[[Work[Result]], Result], work: Work[Result]) -> Result:
        try:
            return self._guarded(call, work)
        finally:
            # Counted down here, not when the loop hears of it: a caller cancelled meanwhile
            # must not let the loop use the connection while this thread still does.
            self._done()

    def _done(self) -> None:
        with self._queued_lock:
            self._queued -= 1

    @staticmethod
    def _guarded(call: Callable[[Work[Result]], Result], work: Work[Result]) -> Result:
        try:
            return call(work)
        except _WriterBusy:
            raise
        except Exception as exc:
            if _file_unavailable(exc):
                raise StoreUnavailable(
                    "the database file cannot be written now; try again shortly",
                    code="database_unavailable",
                ) from exc
            raise

    def _write(self, work: Work[Result]) -> Result:
        with self._engine.begin() as connection:
            return work(connection)

    def _write_inline(self, work: Work[Result]) -> Result:
        with self._inline_engine.begin() as connection:
            return work(connection)

    def _read(self, work: Work[Result]) -> Result:
        with self._engine.connect() as connection:
            connection.execution_options(teaser_read_only=True)
            return work(connection)


# SQLite's words for a file that is there but cannot take this work now: another process
# held the write lock past SQLITE_LOCK_WAIT, or the file, its disk or its directory refuse.
UNAVAILABLE_FILE = (
    "locked",
    "busy",
    "readonly",
    "disk is full",
    "disk I/O error",
    "unable to open",
)


def _file_unavailable(exc: BaseException) -> bool:
    found: BaseException | None = exc
    for _ in range(10):  # a bounded walk down the causes: they may form a loop
        if found is None:
            break
        if isinstance(found, sqlite3.OperationalError):
            return any(words in str(found) for words in UNAVAILABLE_FILE)
        found = found.__cause__ or found.__context__
    return False


def _own_transactions(dbapi_connection: Any, record: Any) -> None:
    tune_sqlite(dbapi_connection, record)
    # pysqlite's own BEGIN is deferred: a transaction that reads first (a purge counts
    # before it deletes) fails at once, without waiting, if another connection wrote
    # meanwhile. This engine begins its own transactions instead (_begin).
    dbapi_connection.isolation_level = None
    # ThreadTransactions.checkpoint copies the log into the file, off this thread, and
    # has it start over once it is long. This connection checkpoints itself only should
    # that fall behind, once the log is this long.
    dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")


class _WriterBusy(Exception):
    """Another connection holds the write lock: the event loop leaves this to the thread."""


def _begin(connection: Connection) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    options = connection.get_execution_options()
    if options.get("teaser_read_only", False):
        driver.execute("BEGIN")
        return
    # A writer takes the write lock up front. While another connection holds it (the
    # app's own, flushing presence, or another worker's), try again every half
    # millisecond: SQLite's busy handler would sleep 1, 2, 5, 10… ms between tries.
    driver.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + SQLITE_LOCK_WAIT
    try:
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                if options.get("teaser_inline", False):
                    raise _WriterBusy from exc  # nothing was written: the thread waits
                time.sleep(WRITE_LOCK_RETRY)
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_WAIT * 1000)}")
