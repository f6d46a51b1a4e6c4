"""TeaserStore: the one place messages live, for both delivery paths.

Every hand-over is a conditional UPDATE ... RETURNING, so a poll and a socket racing for
the same message, even on two workers, can never both get it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import ReturningUpdate

from realtime.clock import Clock, now_ms
from realtime.models import teaser_messages as messages
from realtime.teaser import Draft, Priority, Teaser, new_teaser_id

COLUMNS = (
    messages.c.id,
    messages.c.site_id,
    messages.c.session_id,
    messages.c.message,
    messages.c.priority,
    messages.c.created_at,
    messages.c.expires_at,
    messages.c.seq,
    messages.c.consumed_at,
    messages.c.delivered_via,
    messages.c.only_on_path,
)


@dataclass(frozen=True)
class PurgeReport:
    expired: int
    deleted: int


class TeaserStore:
    def __init__(self, engine: AsyncEngine, *, clock: Clock = now_ms, lease_ms: int = 30_000):
        self.engine = engine
        self.clock = clock
        self.lease_ms = lease_ms
        self._expired_counted_until = clock()

    async def send(self, site_id: str, drafts: Sequence[Draft]) -> list[Teaser]:
        """Store all drafts in one transaction, in order."""
        now = self.clock()
        rows = [
            {
                "id": new_teaser_id(),
                "site_id": site_id,
                "session_id": draft.session_id,
                "message": draft.message,
                "priority": draft.priority.value,
                "created_at": now,
                "expires_at": now + draft.expires_in_ms,
                "only_on_path": draft.only_on_path,
            }
            for draft in drafts
        ]
        statement = insert(messages).returning(
            messages.c.id, messages.c.seq, sort_by_parameter_order=True
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement, rows)
            for row, (_id, seq) in zip(rows, result.all(), strict=True):
                row["seq"] = seq
        return [_teaser_from_mapping(row) for row in rows]

    async def claim_pending(
        self, site_id: str, session_id: str, holder: str, path: str | None = None
    ) -> list[Teaser]:
        """Lease a session's deliverable messages to one socket until it acks them."""
        now = self.clock()
        statement = (
            update(messages)
            .where(self._deliverable(site_id, session_id, now, path))
            .values(claimed_by=holder, claimed_until=now + self.lease_ms)
            .returning(*COLUMNS)
        )
        return await self._hand_over(statement)

    async def consume_pending(
        self, site_id: str, session_id: str, path: str | None = None
    ) -> list[Teaser]:
        """Hand a session's deliverable messages to a poll; they are consumed at once."""
        now = self.clock()
        statement = (
            update(messages)
            .where(self._deliverable(site_id, session_id, now, path))
            .values(consumed_at=now, delivered_via="poll", claimed_by=None, claimed_until=None)
            .returning(*COLUMNS)
        )
        return await self._hand_over(statement)

    async def ack(self, site_id: str, session_id: str, message_id: str, holder: str) -> bool:
        """Mark a message the socket `holder` sent as consumed; False if it was not theirs."""
        statement = (
            update(messages)
            .where(
                messages.c.id == message_id,
                messages.c.site_id == site_id,
                messages.c.session_id == session_id,
                messages.c.claimed_by == holder,
                messages.c.consumed_at.is_(None),
            )
            .values(consumed_at=self.clock(), delivered_via="websocket")
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount == 1

    async def release(self, holder: str) -> int:
        """Give back what a closed socket sent but never got acked, for the next poll or socket."""
        statement = (
            update(messages)
            .where(messages.c.claimed_by == holder, messages.c.consumed_at.is_(None))
            .values(claimed_by=None, claimed_until=None)
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount

    async def get(self, site_id: str, message_id: str) -> Teaser | None:
        statement = select(*COLUMNS).where(
            messages.c.id == message_id, messages.c.site_id == site_id
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else _teaser_from_mapping(row._mapping)

    async def pending_count(self, site_id: str, session_id: str) -> int:
        statement = select(func.count()).where(self._deliverable(site_id, session_id, self.clock()))
        async with self.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def purge_expired(self, retention_ms: int) -> PurgeReport:
        """Count messages that expired unseen since the last call; delete those past retention."""
        now = self.clock()
        newly_expired = select(func.count()).where(
            messages.c.consumed_at.is_(None),
            messages.c.expires_at > self._expired_counted_until,
            messages.c.expires_at <= now,
        )
        async with self.engine.begin() as connection:
            expired = int((await connection.execute(newly_expired)).scalar_one())
            result = await connection.execute(
                delete(messages).where(messages.c.expires_at < now - retention_ms)
            )
        self._expired_counted_until = now
        return PurgeReport(expired=expired, deleted=result.rowcount)

    async def _hand_over(self, statement: ReturningUpdate[Any]) -> list[Teaser]:
        async with self.engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return sorted((_teaser_from_mapping(row._mapping) for row in rows), key=lambda t: t.seq)

    @staticmethod
    def _deliverable(
        site_id: str, session_id: str, now: int, path: str | None = None
    ) -> ColumnElement[bool]:
        return and_(
            messages.c.site_id == site_id,
            messages.c.session_id == session_id,
            messages.c.consumed_at.is_(None),
            messages.c.expires_at > now,
            or_(messages.c.claimed_until.is_(None), messages.c.claimed_until <= now),
            _shown_on(path),
        )


def _shown_on(path: str | None) -> ColumnElement[bool]:
    """Messages bound to a page ("/cart", or a prefix "/chairs*") only go to a transport
    that reports a matching page; unbound ones go anywhere."""
    pattern = messages.c.only_on_path
    if path is None:
        return pattern.is_(None)
    stem = func.length(pattern) - 1
    prefix_match = and_(
        pattern.like("%*"), func.substr(literal(path), 1, stem) == func.substr(pattern, 1, stem)
    )
    return or_(pattern.is_(None), pattern == path, prefix_match)


def _teaser_from_mapping(data: Mapping[Any, Any]) -> Teaser:
    return Teaser(
        id=data["id"],
        site_id=data["site_id"],
        session_id=data["session_id"],
        message=data["message"],
        priority=Priority(data["priority"]),
        created_at=data["created_at"],
        expires_at=data["expires_at"],
        seq=data["seq"],
        consumed_at=data.get("consumed_at"),
        delivered_via=data.get("delivered_via"),
        only_on_path=data.get("only_on_path"),
    )
