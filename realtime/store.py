"""TeaserStore: the one place messages live, for both delivery paths.

Every hand-over is a conditional UPDATE ... RETURNING, so a poll and a socket racing for
the same message, even on two workers, can never both get it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningUpdate

from realtime.clock import Clock, now_ms
from realtime.database import upsert
from realtime.errors import InvalidInput
from realtime.models import idempotency_keys, session_counters
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
    messages.c.session_seq,
)


IDEMPOTENCY_WINDOW_MS = 86_400_000  # a retry a day later is a new send


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    request_hash: str


class DuplicateSend(Exception):
    """A concurrent send with the same idempotency key committed first."""


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

    async def send(
        self, site_id: str, drafts: Sequence[Draft], idempotency: IdempotencyKey | None = None
    ) -> list[Teaser]:
        """Store all drafts in one transaction, in order, numbering each session's messages
        1, 2, 3…; with an idempotency key, raise DuplicateSend if that key was used."""
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
        try:
            async with self.engine.begin() as connection:
                if idempotency is not None:
                    await self._remember(connection, site_id, idempotency, rows, now)
                await self._number(connection, site_id, rows)
                result = await connection.execute(statement, rows)
                for row, (_id, seq) in zip(rows, result.all(), strict=True):
                    row["seq"] = seq
        except IntegrityError:
            if idempotency is None:
                raise
            raise DuplicateSend(idempotency.key) from None
        return [_teaser_from_mapping(row) for row in rows]

    async def previous_send(self, site_id: str, idempotency: IdempotencyKey) -> list[Teaser] | None:
        """The messages an earlier send with this key created; None if the key is new."""
        keys = idempotency_keys.c
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(keys.request_hash, keys.message_ids).where(
                        keys.site_id == site_id, keys.key == idempotency.key
                    )
                )
            ).first()
            if row is None:
                return None
            if row.request_hash != idempotency.request_hash:
                raise InvalidInput("Idempotency-Key", "was already used for a different request")
            found = await connection.execute(
                select(*COLUMNS).where(messages.c.id.in_(row.message_ids))
            )
            by_id = {r.id: _teaser_from_mapping(r._mapping) for r in found}
        return [by_id[i] for i in row.message_ids if i in by_id]

    async def recover(
        self, site_id: str, session_id: str, since: int, path: str | None = None
    ) -> list[Teaser] | None:
        """What a client that last saw `since` missed although it was already handed out
        (a poll answer lost on the way). None for a position this session never reached:
        an unknown position replays nothing."""
        now = self.clock()
        async with self.engine.connect() as connection:
            last = (
                await connection.execute(
                    select(session_counters.c.last_seq).where(
                        session_counters.c.site_id == site_id,
                        session_counters.c.session_id == session_id,
                    )
                )
            ).scalar_one_or_none()
            if last is None or since > last:
                return None
            rows = await connection.execute(
                select(*COLUMNS)
                .where(
                    messages.c.site_id == site_id,
                    messages.c.session_id == session_id,
                    messages.c.session_seq > since,
                    messages.c.consumed_at.is_not(None),
                    messages.c.expires_at > now,
                    _shown_on(path),
                )
                .order_by(messages.c.session_seq)
            )
            return [_teaser_from_mapping(row._mapping) for row in rows]

    async def _number(
        self, connection: AsyncConnection, site_id: str, rows: list[dict[str, Any]]
    ) -> None:
        # The counter row is locked until commit, so concurrent sends to one session
        # take turns and numbers follow commit order, with no gaps.
        per_session: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            per_session.setdefault(row["session_id"], []).append(row)
        # Always lock counters in the same (sorted) order: two bulk sends naming the same
        # sessions in different orders would otherwise deadlock on PostgreSQL.
        for session_id, session_rows in sorted(per_session.items()):
            count = len(session_rows)
            statement = upsert(connection, session_counters).values(
                site_id=site_id, session_id=session_id, last_seq=count
            )
            statement = statement.on_conflict_do_update(
                index_elements=[session_counters.c.site_id, session_counters.c.session_id],
                set_={"last_seq": session_counters.c.last_seq + count},
            ).returning(session_counters.c.last_seq)
            last = int((await connection.execute(statement)).scalar_one())
            for offset, row in enumerate(session_rows):
                row["session_seq"] = last - count + 1 + offset

    async def _remember(
        self,
        connection: AsyncConnection,
        site_id: str,
        idempotency: IdempotencyKey,
        rows: list[dict[str, Any]],
        now: int,
    ) -> None:
        await connection.execute(
            insert(idempotency_keys).values(
                site_id=site_id,
                key=idempotency.key,
                request_hash=idempotency.request_hash,
                message_ids=[row["id"] for row in rows],
                created_at=now,
            )
        )

    async def claim_pending(
        self,
        site_id: str,
        session_id: str,
        holder: str,
        path: str | None = None,
        limit: int | None = None,
    ) -> list[Teaser]:
        """Lease a session's deliverable messages (the oldest `limit`) to one socket until
        it acks them."""
        now = self.clock()
        deliverable = self._deliverable(site_id, session_id, now, path)
        if limit is not None:
            # The outer condition stays: a row a racing poll took meanwhile is re-checked.
            oldest = select(messages.c.seq).where(deliverable).order_by(messages.c.seq)
            deliverable = and_(
                deliverable, messages.c.seq.in_(oldest.limit(limit).scalar_subquery())
            )
        statement = (
            update(messages)
            .where(deliverable)
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
            await connection.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.created_at < now - IDEMPOTENCY_WINDOW_MS
                )
            )
            # A counter outlives its messages only while a client might still resume from it.
            await connection.execute(
                delete(session_counters).where(~_has_messages(session_counters))
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


def _has_messages(counters: Any) -> ColumnElement[bool]:
    return (
        select(messages.c.seq)
        .where(
            messages.c.site_id == counters.c.site_id,
            messages.c.session_id == counters.c.session_id,
        )
        .exists()
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
        session_seq=data.get("session_seq"),
    )
