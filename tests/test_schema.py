"""The schema: migrations build exactly what the models describe, and the hot queries find
their rows through the index meant for them."""

from __future__ import annotations

import sqlite3
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.database import create_engine
from realtime.migrations.migrate import upgrade
from realtime.models import metadata
from realtime.statements import claim_statement


def schema_differences(connection: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(connection), metadata)


async def test_migrations_build_the_schema_the_models_describe(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(schema_differences)

    assert differences == []


async def test_a_claim_reads_only_the_index_of_waiting_messages(tmp_path: Any) -> None:
    path = tmp_path / "teaser.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await engine.dispose()
    statement = claim_statement(has_path=False, limited=True)
    compiled = statement.compile(dialect=engine.dialect)
    values = compiled.construct_params(
        {"site": "shop", "session": "s1", "now": 1, "limit": 10, "holder": "h", "until": 2}
    )
    parameters = [values[name] for name in compiled.positiontup or []]

    with sqlite3.connect(path) as connection:
        plan = connection.execute(f"EXPLAIN QUERY PLAN {compiled}", parameters).fetchall()

    details = [row[-1] for row in plan]
    assert any("ix_teaser_messages_pending" in detail for detail in details), details
