"""Whether a known customer has been here before: a session of theirs, on this site, that
began an earlier visit. What a "welcome back" needs, and a first visit must not get."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from realtime.platform.tables import visitor_sessions
from realtime.targeting.visitors import VisitorState

# A session that began within this long before this one is the same visit in another tab,
# not an earlier visit: 30 minutes is the gap web analytics end a visit after.
VISIT_GAP_MS = 30 * 60_000


async def came_before(
    connection: AsyncConnection, site_id: str, session_id: str, customer_id: str
) -> bool:
    this, earlier = visitor_sessions.alias("this"), visitor_sessions.alias("earlier")
    query = (
        select(earlier.c.session_id)
        .where(
            this.c.site_id == site_id,
            this.c.session_id == session_id,
            earlier.c.site_id == site_id,
            earlier.c.customer_id == customer_id,
            earlier.c.session_id != session_id,
            earlier.c.first_seen < this.c.first_seen - VISIT_GAP_MS,
        )
        .limit(1)
    )
    return (await connection.execute(query)).first() is not None


async def recall_customer(
    connection: AsyncConnection, site_id: str, session_id: str, state: VisitorState
) -> None:
    """Learn, once per session, whether its known customer came on an earlier visit."""
    if state.customer_id and state.returning_customer is None:
        state.returning_customer = await came_before(
            connection, site_id, session_id, state.customer_id
        )
