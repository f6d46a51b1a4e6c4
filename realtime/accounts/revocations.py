"""Revoked visitor sessions: written to the database, and held by every worker in memory,
so checking a token on the poll path costs a set lookup and no query. A worker learns of
another's revocations when it next refreshes (every few seconds, by housekeeping); rows
older than a token's lifetime are pruned, since no token they could stop is live."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from realtime.platform.clock import now_ms
from realtime.platform.tables import revoked_visitor_sessions

Clock = Callable[[], int]
Pairs = list[tuple[str, str]]
CLOCK_SLACK_MS = 60_000


class VisitorRevocations:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lifetime_ms: int,
        clock: Clock = now_ms,
        on_revoked: Callable[[Pairs], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.on_revoked = on_revoked
        self.lifetime_ms = lifetime_ms
        self.clock = clock
        self._revoked: set[tuple[str, str]] = set()
        self._seen_until = 0

    def __call__(self, site_id: str, session_id: str) -> bool:
        return (site_id, session_id) in self._revoked

    async def revoke(
        self, sessions: Iterable[tuple[str, str]], connection: AsyncConnection | None = None
    ) -> int:
        """End every token of these (site, session) pairs: here at once, on other workers at
        their next refresh. Inside `connection`'s transaction when given, so a revocation
        commits with what caused it. Revoking a session twice keeps its first time."""
        now = self.clock()
        pairs = list(dict.fromkeys(sessions))
        rows = [
            {"site_id": site_id, "session_id": session_id, "revoked_at": now}
            for site_id, session_id in pairs
        ]
        if not rows:
            return 0
        insert = postgres_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(revoked_visitor_sessions).values(rows).on_conflict_do_nothing()
        if connection is None:
            async with self.engine.begin() as own:
                await own.execute(statement)
        else:
            await connection.execute(statement)
        await self._take_in(pairs)
        return len(rows)

    async def refresh(self) -> None:
        """Take in what any worker revoked since the last refresh."""
        table = revoked_visitor_sessions.c
        # Read back a minute before the newest row seen: another worker's clock may be a
        # little behind, and a row read twice is harmless (a set) where one missed is not.
        query = select(table.site_id, table.session_id, table.revoked_at).where(
            table.revoked_at >= self._seen_until - CLOCK_SLACK_MS
        )
        pairs: Pairs = []
        async with self.engine.connect() as connection:
            for site_id, session_id, revoked_at in await connection.execute(query):
                pairs.append((site_id, session_id))
                self._seen_until = max(self._seen_until, revoked_at)
        await self._take_in(pairs)

    async def _take_in(self, pairs: Pairs) -> None:
        new = [pair for pair in pairs if pair not in self._revoked]
        self._revoked.update(new)
        if new and self.on_revoked is not None:
            await self.on_revoked(new)

    async def prune(self) -> int:
        cutoff = self.clock() - self.lifetime_ms
        table = revoked_visitor_sessions.c
        async with self.engine.begin() as connection:
            gone = await connection.execute(
                delete(revoked_visitor_sessions)
                .where(table.revoked_at < cutoff)
                .returning(table.site_id, table.session_id)
            )
            forgotten = {(row.site_id, row.session_id) for row in gone}
        self._revoked -= forgotten
        return len(forgotten)
