from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
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
    engine = create_async_engine(
        url, pool_size=20, max_overflow=10, pool_recycle=1800, hide_parameters=True
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_say_why)
    event.listen(engine.sync_engine, "handle_error", _invalidate_when_gone)
    return engine


# PostgreSQL's SQLSTATEs for "this connection is gone, or none can be made now": class 08
# (connection exception), and an administrator's terminate, a crash and a cluster still
# starting or already stopping. A statement cancelled by statement_timeout (57014) is not one.
GONE_STATES = ("57P01", "57P02", "57P03")


def is_disconnect(exc: BaseException) -> bool:
    """Whether `exc` says the database connection is gone, or none can be made now: work
    that met it may succeed on a fresh connection. SQLite's "database is locked" is not
    one (the database is there, and busy), nor is any error of the SQL itself."""
    for cause in _causes(exc):
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, OSError) or _postgres_gone(cause):  # refused, reset, timed out
            return True
    return False


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    found: BaseException | None = exc
    while found is not None and found not in chain and len(chain) < 10:
        chain.append(found)
        found = found.__cause__ or found.__context__
    return chain


def _postgres_gone(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and (state.startswith("08") or state in GONE_STATES):
        return True
    if type(exc).__module__.startswith("asyncpg"):
        # asyncpg's own: a closed connection, or a protocol left mid-operation by one.
        name, text = type(exc).__name__, str(exc)
        if name in ("InterfaceError", "InternalClientError"):
            return any(word in text for word in ("closed", "in progress", '"failed" state'))
    return False


def _connect_or_say_why(
    dialect: Dialect, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    # A refused or timed-out connect reaches SQLAlchemy as a bare OSError, which it passes
    # on as it is; as the driver's own OperationalError it becomes a DBAPIError like any
    # other lost connection (and goes through _invalidate_when_gone).
    dbapi = dialect.loaded_dbapi
    try:
        return dbapi.connect(*cargs, **cparams)
    except OSError as exc:
        raise dbapi.OperationalError(f"cannot reach the database: {exc!r}", exc) from exc


def _invalidate_when_gone(context: ExceptionContext) -> None:
    # SQLAlchemy's asyncpg dialect calls a connection gone only once asyncpg has seen its
    # socket close. A backend that PostgreSQL terminates first sends its reason, then
    # closes: a connection idle in the pool has read the reason (which leaves its protocol
    # "mid-operation") but not yet the close, so the next statement on it fails with
    # "another operation is in progress", and the connection went back to the pool to
    # fail again. Called gone here, it is thrown away, and with it every connection the
    # pool opened before now (a restart or a mass terminate took them all).
    if not context.is_disconnect and is_disconnect(context.original_exception):
        context.is_disconnect = True


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
