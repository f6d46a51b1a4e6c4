"""Apply pending migrations. Several workers may start at once, so PostgreSQL takes a lock."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

# A package resource, as Alembic reads it: found wherever the package is installed.
MIGRATIONS = "realtime:migrations"
# Any constant works; it only has to be the same in every worker.
ADVISORY_LOCK_ID = 0x7EA5E2


def alembic_config(url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", url)
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Released when this transaction ends, whether the upgrade worked or not.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine) -> None:
    with _sqlite_file_lock(engine):
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)


@contextmanager
def _sqlite_file_lock(engine: AsyncEngine) -> Iterator[None]:
    """Workers sharing one SQLite file take turns migrating it (PostgreSQL locks itself)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database:
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for the few ms a migration takes, at start
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
