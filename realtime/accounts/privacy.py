"""A person's right to be forgotten, and how long anyone's data is kept at all."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from realtime.accounts.revocations import VisitorRevocations
from realtime.platform.clock import Clock, now_ms
from realtime.platform.errors import InvalidInput
from realtime.platform.tables import (
    of_session,
    session_counters,
    teaser_messages,
    teaser_polls,
    visitor_sessions,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events_internal,
    webhook_outbox,
)

# Webhook deliveries and their outbox events name the session too (and a conversion's
# customer id): an erased person's pending ones are never sent.
PER_SESSION_TABLES: tuple[Table, ...] = (
    webhook_deliveries,
    webhook_outbox,
    webhook_events_internal,
    teaser_messages,
    teaser_polls,
    session_counters,
    visitor_sessions,
)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Erasure:
    sessions: int
    rows: dict[str, int]


class Privacy:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = now_ms,
        revocations: VisitorRevocations | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.revocations = revocations

    async def erase(
        self,
        *,
        email: str | None = None,
        customer_id: str | None = None,
        site_id: str | None = None,
    ) -> Erasure:
        """Delete every session of this person (on one site, or on all) and all it holds,
        and end those sessions' tokens: the browser that held one starts afresh."""
        if not email and not customer_id:
            raise InvalidInput("email", "give an e-mail address or a customer id to erase")
        sessions = visitor_sessions.c
        conditions = []
        if email:
            conditions.append(sessions.customer_email == email.strip().lower())
        if customer_id:
            conditions.append(sessions.customer_id == customer_id)
        match = or_(*conditions)
        query = select(sessions.site_id, sessions.session_id).where(match)
        if site_id is not None:
            query = query.where(sessions.site_id == site_id)
        async with self.engine.begin() as connection:
            found = (await connection.execute(query)).all()
            rows = {str(table.name): 0 for table in PER_SESSION_TABLES}
            for site, session in found:
                for table in PER_SESSION_TABLES:
                    rows[str(table.name)] += await _delete_session(connection, table, site, session)
            if self.revocations is not None:
                await self.revocations.revoke([(s, n) for s, n in found], connection)
        return Erasure(sessions=len(found), rows=rows)

    async def purge_older_than(self, days: int) -> int:
        """Retention: drop events and idle sessions older than `days`; 0 keeps everything."""
        if days <= 0:
            return 0
        cutoff = self.clock() - days * DAY_MS
        async with self.engine.begin() as connection:
            events = await connection.execute(
                delete(webhook_events_internal).where(webhook_events_internal.c.created_at < cutoff)
            )
            await connection.execute(
                delete(visitor_sessions).where(visitor_sessions.c.last_seen < cutoff)
            )
            await connection.execute(delete(teaser_polls).where(teaser_polls.c.last_seen < cutoff))
        return events.rowcount


async def _delete_session(
    connection: AsyncConnection, table: Table, site: str, session: str
) -> int:
    if table is teaser_messages:
        condition = of_session(site, session)
    elif table is webhook_deliveries:  # a delivery knows its site through its endpoint
        of_site = select(webhook_endpoints.c.id).where(webhook_endpoints.c.site_id == site)
        condition = and_(table.c.session_id == session, table.c.endpoint_id.in_(of_site))
    else:
        condition = and_(table.c.site_id == site, table.c.session_id == session)
    result = await connection.execute(delete(table).where(condition))
    return result.rowcount
