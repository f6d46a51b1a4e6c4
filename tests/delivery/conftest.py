"""The delivery wing's unit tests run on a migrated SQLite file of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.delivery.fakes import migrated_engine


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_engine(sqlite_url)
    yield engine
    await engine.dispose()
