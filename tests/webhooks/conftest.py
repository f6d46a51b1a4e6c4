"""The receiver every webhook test module sends to: one per module, on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.webhooks.receiver import Receiver


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    live = Receiver()
    await live.start()
    yield live
    await live.stop()
