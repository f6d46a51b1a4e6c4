"""Signed-in dashboards, kept on the server so that signing out really ends them.

The cookie is still signed, but it only names a row here: a session is good while its row
is live (not revoked, not expired), so a copied cookie dies with its session, on every
worker at once. Rows are keyed by the SHA-256 of the cookie's random nonce, so this table
alone signs nobody in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.accounts.operators import Operator, SignedOut, operator_of
from realtime.platform.clock import Clock, now_ms
from realtime.platform.tables import operator_sessions, operators

OPERATOR_SESSION_TTL_MS = 12 * 3_600_000  # then the operator signs in again, whatever they do
# last_seen_at tells the operator which of their sessions are in use; a minute's
# precision is plenty, and spares a write on every request.
TOUCH_EVERY_MS = 60_000
MAX_ADDRESS = 64
MAX_USER_AGENT = 200


def session_key(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


@dataclass(frozen=True)
class OperatorSession:
    id: str
    operator_id: int
    created_at: int
    expires_at: int
    last_seen_at: int
    address: str
    user_agent: str


class OperatorSessions:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = now_ms,
        ttl_ms: int = OPERATOR_SESSION_TTL_MS,
        on_signed_out: SignedOut | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.on_signed_out = on_signed_out

    async def open(
        self, operator_id: int, nonce: str, *, address: str, user_agent: str
    ) -> OperatorSession:
        now = self.clock()
        session = OperatorSession(
            session_key(nonce),
            operator_id,
            now,
            now + self.ttl_ms,
            now,
            address[:MAX_ADDRESS],
            user_agent[:MAX_USER_AGENT],
        )
        async with self.engine.begin() as connection:
            # This operator's ended sessions go at each sign-in; housekeeping takes the rest.
            await connection.execute(
                delete(operator_sessions).where(
                    operator_sessions.c.operator_id == operator_id, _ended(now)
                )
            )
            await connection.execute(insert(operator_sessions).values(**session.__dict__))
        return session

    async def live(self, operator_id: int, nonce: str) -> Operator | None:
        """The operator whose live session this nonce names; None once it has ended."""
        now = self.clock()
        key = session_key(nonce)
        statement = (
            select(operators, operator_sessions.c.last_seen_at.label("session_seen_at"))
            .join(operator_sessions, operator_sessions.c.operator_id == operators.c.id)
            .where(
                operator_sessions.c.id == key,
                operator_sessions.c.operator_id == operator_id,
                operator_sessions.c.revoked_at.is_(None),
                operator_sessions.c.expires_at > now,
            )
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            return None
        if now - int(row.session_seen_at) >= TOUCH_EVERY_MS:
            await self._touch(key, now)
        return operator_of(row)

    async def revoke(self, operator_id: int, nonce: str) -> bool:
        """End one session (signing out in this browser)."""
        ended = await self._revoke(
            operator_sessions.c.operator_id == operator_id,
            operator_sessions.c.id == session_key(nonce),
        )
        return ended > 0

    async def revoke_all(self, operator_id: int) -> int:
        """End every session of an operator ("sign out everywhere"); how many were live."""
        return await self._revoke(operator_sessions.c.operator_id == operator_id)

    async def list_live(self, operator_id: int) -> list[OperatorSession]:
        now = self.clock()
        statement = (
            select(operator_sessions)
            .where(
                operator_sessions.c.operator_id == operator_id,
                operator_sessions.c.revoked_at.is_(None),
                operator_sessions.c.expires_at > now,
            )
            .order_by(operator_sessions.c.created_at)
        )
        async with self.engine.connect() as connection:
            return [_session(row) for row in (await connection.execute(statement)).all()]

    async def prune(self) -> int:
        """Forget every ended session (housekeeping): a row is only kept while it counts."""
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(operator_sessions).where(_ended(self.clock())))
        return int(result.rowcount or 0)

    async def _revoke(self, *conditions: ColumnElement[bool]) -> int:
        statement = (
            update(operator_sessions)
            .where(*conditions, operator_sessions.c.revoked_at.is_(None))
            .values(revoked_at=self.clock())
            .returning(operator_sessions.c.operator_id)
        )
        async with self.engine.begin() as connection:
            ended = [int(each) for each in (await connection.execute(statement)).scalars()]
        if self.on_signed_out is not None:
            for operator_id in set(ended):
                await self.on_signed_out(operator_id)
        return len(ended)

    async def _touch(self, key: str, now: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(operator_sessions)
                .where(operator_sessions.c.id == key)
                .values(last_seen_at=now)
            )


def _ended(now: int) -> ColumnElement[bool]:
    return or_(operator_sessions.c.expires_at <= now, operator_sessions.c.revoked_at.is_not(None))


def _session(row: Row[tuple[object, ...]]) -> OperatorSession:
    data = row._mapping
    return OperatorSession(
        id=str(data["id"]),
        operator_id=int(data["operator_id"]),
        created_at=int(data["created_at"]),
        expires_at=int(data["expires_at"]),
        last_seen_at=int(data["last_seen_at"]),
        address=str(data["address"]),
        user_agent=str(data["user_agent"]),
    )
