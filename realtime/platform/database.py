from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from realtime.platform.errors import ConfigError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
# How long any SQLite connection of Teaser waits for another's write lock.
SQLITE_LOCK_WAIT = 30.0


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"Config 'DATABASE_URL' has driver '{parsed.drivername}'. "
            f"Expected one of {', '.join(SUPPORTED_DRIVERS)}."
        )
    # hide_parameters: a failed statement's error quotes its bound values (e-mail addresses,
    # customer ids, message text); those errors are logged, and logs keep no personal data.
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(url, parsed.database)
    # A steady pool: opening connections under load (overflow) costs more than waiting.
    # asyncpg prepares every statement, so after five runs PostgreSQL may keep a generic
    # plan and skip planning; the hot statements' generic plans use the right indexes
    # (tests/test_schema.py checks them on an empty table, where a wrong one is likeliest).
    return create_async_engine(
        url, pool_size=20, max_overflow=10, pool_recycle=1800, hide_parameters=True
    )


def _sqlite_engine(url: str, database: str | None) -> AsyncEngine:
    if not database or database == ":memory:":
        raise ConfigError(
            "Config 'DATABASE_URL' names an in-memory SQLite database, which every "
            "connection sees empty. Use a file, e.g. sqlite+aiosqlite:///./teaser.db"
        )
    Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    # One connection per worker for everything but the store, which has its own in its own
    # thread (realtime/transactions.py): SQLite has one writer anyway, and queueing for it
    # here (in asyncio) is far cheaper than SQLite's busy handler, which sleeps up to 100 ms.
    # No rollback when a connection goes back to the pool: SQLAlchemy already ended any
    # transaction when the connection closed, and here each extra statement is a round trip
    # to aiosqlite's thread.
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_LOCK_WAIT},
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        pool_reset_on_return=None,
        hide_parameters=True,
    )
    event.listen(engine.sync_engine, "connect", tune_sqlite)
    return engine


def tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets polls read while a send writes, and lets several workers share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_WAIT * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Both dialects spell INSERT … ON CONFLICT the same way, from their own modules.
UPSERT_BUILDERS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert(connection: AsyncConnection, table: Table) -> Any:
    """An INSERT that supports .on_conflict_do_update / _do_nothing on this database."""
    return UPSERT_BUILDERS[connection.dialect.name](table)
