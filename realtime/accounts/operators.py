"""Operator accounts: the people who sign in to one site's dashboard.

Unlike API keys (long random tokens, so SHA-256 is enough), passwords can be guessed, so
they are stored only as Argon2id hashes, slow on purpose, computed off the event loop."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.clock import Clock, now_ms
from realtime.platform.errors import InvalidInput, NotFound, Unauthorized
from realtime.platform.ids import EMAIL, check_site_id
from realtime.platform.tables import operator_sessions, operators, sites

# OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane): ~30 ms a hash. Hashes carry
# their parameters, so raising these later re-hashes each password at its next sign-in.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" is a denial of service

# Told the id of an operator some of whose sessions just ended, so that other workers can
# close that operator's open dashboards at once (the runtime passes the broker's word on).
SignedOut = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Operator:
    id: int
    site_id: str
    email: str
    created_at: int
    password_changed_at: int
    last_login_at: int | None = None


def normalise_email(value: object) -> str:
    if not isinstance(value, str) or not EMAIL.fullmatch(value.strip()):
        raise InvalidInput("email", "must be an e-mail address")
    return value.strip().lower()


def new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


@cache
def _decoy_hash() -> str:
    # Unknown e-mails are checked against this, so a sign-in takes as long either way.
    return HASHER.hash(secrets.token_urlsafe(15))


def _verify(stored: str | None, password: str) -> bool:
    """Runs in a worker thread: slow on purpose, for a real hash and the decoy alike."""
    try:
        return HASHER.verify(stored or _decoy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


class OperatorRegistry:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = now_ms,
        on_signed_out: SignedOut | None = None,
    ):
        self.engine = engine
        self.clock = clock
        self.on_signed_out = on_signed_out

    async def create(
        self, site_id: str, email: str, password: str | None = None
    ) -> tuple[Operator, str]:
        """Add an operator to a site; returns it with its password (generated if not given)."""
        check_site_id(site_id, "site id")
        email = normalise_email(email)
        password = password or new_password()
        password_hash = await asyncio.to_thread(HASHER.hash, password)
        now = self.clock()
        try:
            async with self.engine.begin() as connection:
                known = select(sites.c.id).where(sites.c.id == site_id)
                if (await connection.execute(known)).first() is None:
                    raise NotFound(f"no site '{site_id}'")
                result = await connection.execute(
                    insert(operators)
                    .values(
                        site_id=site_id,
                        email=email,
                        password_hash=password_hash,
                        created_at=now,
                        password_changed_at=now,
                    )
                    .returning(operators.c.id)
                )
                operator_id = int(result.scalar_one())
        except IntegrityError:
            taken = f"'{email}' is already an operator of '{site_id}'"
            raise InvalidInput("email", taken) from None
        return Operator(operator_id, site_id, email, now, now), password

    async def reset_password(self, site_id: str, email: str) -> str:
        """A new generated password; every session of the operator ends with the old one."""
        password = new_password()
        password_hash = await asyncio.to_thread(HASHER.hash, password)
        now = self.clock()
        async with self.engine.begin() as connection:
            operator_id = (
                await connection.execute(
                    update(operators)
                    .where(*_named(site_id, email))
                    .values(password_hash=password_hash, password_changed_at=now)
                    .returning(operators.c.id)
                )
            ).scalar()
            if operator_id is None:
                raise NotFound(f"no operator '{email}' for site '{site_id}'")
            await connection.execute(
                update(operator_sessions)
                .where(
                    operator_sessions.c.operator_id == operator_id,
                    operator_sessions.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        await self._signed_out(int(operator_id))
        return password

    async def remove(self, site_id: str, email: str) -> bool:
        """Remove an operator, and with them every session they had."""
        async with self.engine.begin() as connection:
            operator_id = (
                await connection.execute(
                    delete(operators).where(*_named(site_id, email)).returning(operators.c.id)
                )
            ).scalar()
            if operator_id is None:
                return False
            # Not left to ON DELETE CASCADE: SQLite only keeps it with foreign keys on.
            await connection.execute(
                delete(operator_sessions).where(operator_sessions.c.operator_id == operator_id)
            )
        await self._signed_out(int(operator_id))
        return True

    async def _signed_out(self, operator_id: int) -> None:
        if self.on_signed_out is not None:
            await self.on_signed_out(operator_id)

    async def authenticate(self, site_id: str, email: str, password: str) -> Operator:
        refused = Unauthorized("wrong site, e-mail or password", code="invalid_login")
        if not (0 < len(password) <= MAX_PASSWORD_LENGTH):
            raise refused
        row = await self._row(site_id, email)
        stored = None if row is None else str(row.password_hash)
        if not await asyncio.to_thread(_verify, stored, password) or row is None or stored is None:
            raise refused
        now = self.clock()
        values: dict[str, object] = {"last_login_at": now}
        if HASHER.check_needs_rehash(stored):
            values["password_hash"] = await asyncio.to_thread(HASHER.hash, password)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(operators).where(operators.c.id == row.id).values(**values)
            )
        return operator_of(row)

    async def get(self, operator_id: int) -> Operator | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(operators).where(operators.c.id == operator_id))
            ).first()
        return None if row is None else operator_of(row)

    async def find(self, site_id: str, email: str) -> Operator | None:
        row = await self._row(site_id, email)
        return None if row is None else operator_of(row)

    async def list_operators(self, site_id: str) -> list[Operator]:
        statement = (
            select(operators).where(operators.c.site_id == site_id).order_by(operators.c.email)
        )
        async with self.engine.connect() as connection:
            return [operator_of(row) for row in (await connection.execute(statement)).all()]

    async def ensure(self, site_id: str, email: str) -> str | None:
        """Create the operator if missing (the dev-mode demo) and return its new password;
        None if it existed. Workers starting together: whoever loses the race finds it done."""
        if await self.find(site_id, email) is not None:
            return None
        try:
            return (await self.create(site_id, email))[1]
        except InvalidInput:
            return None

    async def _row(self, site_id: str, email: str) -> Row[tuple[object, ...]] | None:
        try:
            email = normalise_email(email)
        except InvalidInput:
            return None
        statement = select(operators).where(
            operators.c.site_id == site_id, operators.c.email == email
        )
        async with self.engine.connect() as connection:
            return (await connection.execute(statement)).first()


def _named(site_id: str, email: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return operators.c.site_id == site_id, operators.c.email == normalise_email(email)


def operator_of(row: Row[tuple[object, ...]]) -> Operator:
    data = row._mapping
    return Operator(
        id=int(data["id"]),
        site_id=str(data["site_id"]),
        email=str(data["email"]),
        created_at=int(data["created_at"]),
        password_changed_at=int(data["password_changed_at"]),
        last_login_at=None if data["last_login_at"] is None else int(data["last_login_at"]),
    )
