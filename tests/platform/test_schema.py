"""The schema: migrations build exactly what the models describe, and the hot queries find
their rows through the index meant for them (SQLite's query plans, PostgreSQL's generic
plans)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import BindParameter, Connection, bindparam, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.visitors import replacement_traverse

from realtime.delivery.statements import ACK_RETURNING, SETTLE, claim_statement
from realtime.delivery.writes import ack_sql
from realtime.migrations.migrate import upgrade
from realtime.platform.database import create_engine
from realtime.platform.tables import metadata, of_session
from realtime.platform.tables import teaser_messages as messages

Plan = list[str]


def schema_differences(connection: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(connection), metadata)


async def test_migrations_build_the_schema_the_models_describe(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(schema_differences)

    assert differences == []


@pytest.fixture
async def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "teaser.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await engine.dispose()
    return path


def query_plan(path: Path, statement: Executable, values: dict[str, Any]) -> Plan:
    compiled = statement.compile(dialect=sqlite.dialect())
    bound = compiled.construct_params(values)
    parameters = [bound[name] for name in compiled.positiontup or []]
    with sqlite3.connect(path) as connection:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {compiled}", parameters).fetchall()
    return [row[-1] for row in rows]


def uses(plan: Plan, index: str) -> bool:
    """A search or a scan through `index` ("… USING INDEX name (site_id=? …)" or "… name")."""
    return any(step.split(" USING INDEX ", 1)[-1].split(" ", 1)[0] == index for step in plan)


def scans_the_table(plan: Plan) -> bool:
    return any(step.startswith("SCAN teaser_messages") and "INDEX" not in step for step in plan)


async def test_a_claim_reads_only_the_index_of_unsettled_messages(sqlite_path: Path) -> None:
    plan = query_plan(
        sqlite_path,
        claim_statement(has_path=False, limited=True),
        {"site": "shop", "session": "s1", "now": 1, "limit": 10, "holder": "h", "until": 2},
    )

    assert uses(plan, "ix_teaser_messages_unsettled"), plan
    assert not scans_the_table(plan), plan


async def test_a_sessions_history_reads_both_indexes_by_session(sqlite_path: Path) -> None:
    history = select(messages.c.id).where(of_session("shop", "s1"))

    plan = query_plan(sqlite_path, history, {})

    assert uses(plan, "ix_teaser_messages_unsettled"), plan
    assert uses(plan, "ux_teaser_messages_session_seq"), plan
    assert not scans_the_table(plan), plan


async def test_the_settle_looks_only_through_unsettled_messages(sqlite_path: Path) -> None:
    plan = query_plan(sqlite_path, SETTLE, {"now": 1})

    assert uses(plan, "ix_teaser_messages_unsettled"), plan
    assert not scans_the_table(plan), plan


async def test_a_sqlite_ack_finds_its_messages_by_id(sqlite_path: Path) -> None:
    with sqlite3.connect(sqlite_path) as connection:
        rows = connection.execute(
            f"EXPLAIN QUERY PLAN {ack_sql(ids=2, holders=1)}", [1, "tm_a", "tm_b", "h"]
        ).fetchall()
    plan = [row[-1] for row in rows]

    assert any("INDEX sqlite_autoindex_teaser_messages_1 (id=?)" in step for step in plan), plan
    assert not scans_the_table(plan), plan


async def generic_plan(url: str, statement: Executable, values: dict[str, Any]) -> str:
    """PostgreSQL's generic plan for `statement`: the plan a prepared statement keeps after
    five runs, made without looking at the values."""
    import asyncpg as driver

    def bind_value(element: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in values:
            value = values[element.key]
            return bindparam(element.key, value, type_=element.type, expanding=element.expanding)
        return None

    bound_statement = replacement_traverse(statement, {}, bind_value)
    compiled = bound_statement.compile(
        dialect=asyncpg.dialect(), compile_kwargs={"render_postcompile": True}
    )
    bound = compiled.construct_params()
    literals = ", ".join(
        f"'{value}'" if isinstance(value, str) else str(value)
        for value in (bound[name] for name in compiled.positiontup or [])
    )
    connection = await driver.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE hot AS {compiled}")
        rows = await connection.fetch(f"EXPLAIN EXECUTE hot({literals})")
    finally:
        await connection.close()
    return "\n".join(row[0] for row in rows)


@pytest.fixture
async def postgres_schema(postgres_url: str) -> str:
    engine = create_engine(postgres_url)
    await upgrade(engine)
    await engine.dispose()
    return postgres_url


async def test_postgres_generic_plans_of_claims_and_acks_use_their_indexes(
    postgres_schema: str,
) -> None:
    claim = await generic_plan(
        postgres_schema,
        claim_statement(has_path=False, limited=True),
        {"site": "shop", "session": "s1", "now": 1, "limit": 10, "holder": "h", "until": 2},
    )
    ack = await generic_plan(
        postgres_schema, ACK_RETURNING, {"ids": ["tm_a", "tm_b"], "holders": ["h"], "now": 1}
    )

    assert "ix_teaser_messages_unsettled" in claim and "Seq Scan" not in claim, claim
    assert "teaser_messages_id_key" in ack and "Seq Scan" not in ack, ack
