"""Who was seen when. Polls arrive every few seconds from every open tab, so marks are
kept in memory and written as one upsert per session per flush, not a write per poll."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.clock import Clock, now_ms
from realtime.platform.database import upsert
from realtime.platform.tables import teaser_polls


@dataclass
class Mark:
    first_seen: int
    last_seen: int
    polls: int
    transport: str


class PresenceRecorder:
    def __init__(self, engine: AsyncEngine, *, clock: Clock = now_ms) -> None:
        self.engine = engine
        self.clock = clock
        self._marks: dict[tuple[str, str], Mark] = {}

    def seen(self, site_id: str, session_id: str, transport: str, *, poll: bool = False) -> None:
        now = self.clock()
        mark = self._marks.get((site_id, session_id))
        if mark is None:
            mark = self._marks[(site_id, session_id)] = Mark(now, now, 0, transport)
        mark.last_seen, mark.transport = now, transport
        mark.polls += int(poll)

    @property
    def unflushed(self) -> int:
        return len(self._marks)

    async def flush(self) -> int:
        marks, self._marks = self._marks, {}
        if not marks:
            return 0
        rows = [
            {
                "site_id": site_id,
                "session_id": session_id,
                "first_seen": mark.first_seen,
                "last_seen": mark.last_seen,
                "poll_count": mark.polls,
                "last_transport": mark.transport,
            }
            for (site_id, session_id), mark in marks.items()
        ]
        async with self.engine.begin() as connection:
            statement = upsert(connection, teaser_polls)
            statement = statement.on_conflict_do_update(
                index_elements=[teaser_polls.c.site_id, teaser_polls.c.session_id],
                set_={
                    "last_seen": statement.excluded.last_seen,
                    "poll_count": teaser_polls.c.poll_count + statement.excluded.poll_count,
                    "last_transport": statement.excluded.last_transport,
                },
            )
            await connection.execute(statement, rows)
        return len(rows)

    async def active_sessions(self, site_id: str, within_ms: int) -> int:
        statement = select(func.count()).where(
            teaser_polls.c.site_id == site_id, teaser_polls.c.last_seen >= self.clock() - within_ms
        )
        async with self.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())
