"""Each site's webhook endpoints, numbered 1, 2, 3… within the site like its keys: where
they point, what they take, their signing secrets, and what became of their deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from realtime.platform import Conflict, InvalidInput, NotFound, now_ms
from realtime.platform.clock import Clock
from realtime.platform.outbox import SUBSCRIBABLE, Subscriptions, probe_event, write_outbox
from realtime.platform.tables import (
    sites,
    webhook_deliveries,
    webhook_endpoints,
    webhook_outbox,
)
from realtime.webhooks.addresses import check_url
from realtime.webhooks.signing import new_secret

# A rotated secret keeps signing beside the new one this long, for receivers to switch.
PREVIOUS_SECRET_MS = 86_400_000
NUMBERING_TRIES = 5
MAX_NUMBER = 2**31 - 1
MAX_ENDPOINTS_PER_SITE = 20
RECENT_DELIVERIES = 50

endpoints = webhook_endpoints.c
deliveries = webhook_deliveries.c
outbox = webhook_outbox.c


@dataclass(frozen=True)
class Endpoint:
    number: int
    site_id: str
    url: str
    events: tuple[str, ...]  # empty: every event
    created_at: int
    disabled_at: int | None
    disabled_reason: str | None
    failing_since: int | None
    last_delivered_at: int | None

    @property
    def state(self) -> str:
        if self.disabled_at is not None:
            return "disabled"
        return "failing" if self.failing_since is not None else "enabled"


@dataclass(frozen=True)
class Rotated:
    secret: str  # shown this once
    previous_until: int  # the old secret signs too until then


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    event_id: str
    type: str
    status: str  # pending, delivered or failed
    attempts: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response: str | None
    created_at: int
    last_attempt_at: int | None
    next_attempt_at: int | None
    delivered_at: int | None


class WebhookEndpoints:
    def __init__(
        self,
        engine: AsyncEngine,
        subscriptions: Subscriptions,
        *,
        production: bool,
        allow_private: bool,
        clock: Clock = now_ms,
    ) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.production = production
        self.allow_private = allow_private
        self.clock = clock

    async def add(self, site_id: str, url: str, events: Sequence[str] = ()) -> tuple[Endpoint, str]:
        """A new endpoint and its signing secret (shown this once)."""
        check_url(url, production=self.production, allow_private=self.allow_private)
        kinds = _checked_events(events)
        secret = new_secret()
        for attempt in range(NUMBERING_TRIES):
            try:
                async with self.engine.begin() as connection:
                    await self._check_room(connection, site_id)
                    number = await self._insert(connection, site_id, url, kinds, secret)
                break
            except IntegrityError:
                if attempt == NUMBERING_TRIES - 1:
                    raise
        self.subscriptions.forget()
        return await self.get(site_id, number), secret

    async def _check_room(self, connection: AsyncConnection, site_id: str) -> None:
        if (
            await connection.execute(select(sites.c.id).where(sites.c.id == site_id))
        ).first() is None:
            raise NotFound(f"no site '{site_id}'", code="site_not_found")
        live = select(func.count()).where(
            endpoints.site_id == site_id, endpoints.removed_at.is_(None)
        )
        if int((await connection.execute(live)).scalar_one()) >= MAX_ENDPOINTS_PER_SITE:
            raise Conflict(
                f"site '{site_id}' has {MAX_ENDPOINTS_PER_SITE} endpoints, the most it may "
                "have; remove one first",
                code="too_many_endpoints",
            )

    async def _insert(
        self, connection: AsyncConnection, site_id: str, url: str, kinds: list[str], secret: str
    ) -> int:
        """The endpoint, numbered one past the site's highest (removed ones keep theirs).
        Two adds at once may pick the same number: the unique index refuses the second."""
        highest = select(func.coalesce(func.max(endpoints.number), 0)).where(
            endpoints.site_id == site_id
        )
        number = int((await connection.execute(highest)).scalar_one()) + 1
        await connection.execute(
            insert(webhook_endpoints).values(
                site_id=site_id,
                number=number,
                url=url,
                events=kinds,
                secret=secret,
                created_at=self.clock(),
            )
        )
        return number

    async def list_endpoints(self, site_id: str) -> list[Endpoint]:
        statement = (
            select(webhook_endpoints)
            .where(endpoints.site_id == site_id, endpoints.removed_at.is_(None))
            .order_by(endpoints.number)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [_endpoint(row) for row in rows]

    async def get(self, site_id: str, number: int) -> Endpoint:
        async with self.engine.connect() as connection:
            return _endpoint(await _row(connection, site_id, number))

    async def remove(self, site_id: str, number: int) -> None:
        """Stops it at once (its pending deliveries fail); its number is never reused."""
        now = self.clock()
        async with self.engine.begin() as connection:
            row = await _row(connection, site_id, number)
            await connection.execute(
                update(webhook_endpoints)
                .where(endpoints.id == row.id)
                .values(removed_at=now, secret="", previous_secret=None, claimed_by=None)
            )
            await _fail_pending(connection, row.id, "the endpoint was removed")
        self.subscriptions.forget()

    async def rotate(self, site_id: str, number: int) -> Rotated:
        """A new secret; the old one signs beside it for 24 hours."""
        secret, until = new_secret(), self.clock() + PREVIOUS_SECRET_MS
        async with self.engine.begin() as connection:
            row = await _row(connection, site_id, number, lock=True)
            await connection.execute(
                update(webhook_endpoints)
                .where(endpoints.id == row.id)
                .values(
                    secret=secret,
                    previous_secret=row.secret,
                    previous_secret_until=until,
                )
            )
        return Rotated(secret, until)

    async def enable(self, site_id: str, number: int) -> Endpoint:
        """Sending again, after it was disabled (its failures fixed, presumably)."""
        async with self.engine.begin() as connection:
            row = await _row(connection, site_id, number)
            await connection.execute(
                update(webhook_endpoints)
                .where(endpoints.id == row.id)
                .values(disabled_at=None, disabled_reason=None, failing_since=None)
            )
        self.subscriptions.forget()
        return await self.get(site_id, number)

    async def queue_test(self, site_id: str, number: int) -> str:
        """Queue a teaser.test event for this endpoint alone; its webhook-id."""
        now = self.clock()
        event = probe_event(site_id, number, now)
        async with self.engine.begin() as connection:
            row = await _row(connection, site_id, number)
            if row.disabled_at is not None:
                raise Conflict(
                    f"endpoint {number} is disabled ({row.disabled_reason}); "
                    f"`teaser webhook enable {site_id} {number}` sends to it again",
                    code="endpoint_disabled",
                )
            await connection.run_sync(write_outbox, [event])
            seq = (
                await connection.execute(
                    update(webhook_outbox)
                    .where(outbox.event_id == event.event_id)
                    .values(fanned_out_at=now)
                    .returning(outbox.seq)
                )
            ).scalar_one()
            await connection.execute(
                insert(webhook_deliveries).values(
                    endpoint_id=row.id,
                    event_seq=seq,
                    session_id=event.session_id,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        return event.event_id

    async def deliveries(
        self, site_id: str, number: int, limit: int = RECENT_DELIVERIES
    ) -> list[DeliveryInfo]:
        """The endpoint's latest deliveries, newest event first."""
        async with self.engine.connect() as connection:
            row = await _row(connection, site_id, number)
            found = await connection.execute(
                _delivery_query()
                .where(deliveries.endpoint_id == row.id)
                .order_by(deliveries.event_seq.desc())
                .limit(limit)
            )
            return [_delivery(each) for each in found]

    async def replay(self, site_id: str, number: int, delivery_id: int) -> DeliveryInfo:
        """Send it again, soon, with the same webhook-id (a receiver that has it skips it)."""
        now = self.clock()
        async with self.engine.begin() as connection:
            row = await _row(connection, site_id, number)
            done = await connection.execute(
                update(webhook_deliveries)
                .where(deliveries.id == delivery_id, deliveries.endpoint_id == row.id)
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    claimed_by=None,
                    claimed_until=None,
                )
            )
            if done.rowcount != 1:
                raise NotFound(
                    f"endpoint {number} has no delivery {delivery_id}", code="delivery_not_found"
                )
            found = await connection.execute(_delivery_query().where(deliveries.id == delivery_id))
            return _delivery(found.one())


def _checked_events(events: Sequence[str]) -> list[str]:
    unknown = [kind for kind in events if kind not in SUBSCRIBABLE]
    if unknown:
        raise InvalidInput(
            "events", f"'{unknown[0]}' is not an event; the events are {', '.join(SUBSCRIBABLE)}"
        )
    return list(dict.fromkeys(events))


async def _row(
    connection: AsyncConnection, site_id: str, number: int, *, lock: bool = False
) -> Row[Any]:
    if not 0 < number <= MAX_NUMBER:
        raise NotFound(
            f"site '{site_id}' has no webhook endpoint {number}", code="endpoint_not_found"
        )
    statement = select(webhook_endpoints).where(
        endpoints.site_id == site_id, endpoints.number == number, endpoints.removed_at.is_(None)
    )
    row = (await connection.execute(statement.with_for_update() if lock else statement)).first()
    if row is None:
        raise NotFound(
            f"site '{site_id}' has no webhook endpoint {number} "
            f"(`teaser webhook list {site_id}` shows them)",
            code="endpoint_not_found",
        )
    return row


async def _fail_pending(connection: AsyncConnection, endpoint_id: int, reason: str) -> None:
    await connection.execute(
        update(webhook_deliveries)
        .where(deliveries.endpoint_id == endpoint_id, deliveries.status == "pending")
        .values(status="failed", last_error=reason, claimed_by=None, claimed_until=None)
    )


def _endpoint(row: Row[Any]) -> Endpoint:
    return Endpoint(
        number=row.number,
        site_id=row.site_id,
        url=row.url,
        events=tuple(row.events or ()),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        last_delivered_at=row.last_delivered_at,
    )


def _delivery_query() -> Any:
    return select(webhook_deliveries, outbox.event_id, outbox.type).join(
        webhook_outbox, outbox.seq == deliveries.event_seq
    )


def _delivery(row: Row[Any]) -> DeliveryInfo:
    pending = row.status == "pending"
    return DeliveryInfo(
        id=row.id,
        event_id=row.event_id,
        type=row.type,
        status=row.status,
        attempts=row.attempts,
        status_code=row.last_status_code,
        latency_ms=row.last_latency_ms,
        error=row.last_error,
        response=row.last_response,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        next_attempt_at=row.next_attempt_at if pending else None,
        delivered_at=row.delivered_at,
    )
