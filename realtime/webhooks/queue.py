"""The deliveries' SQL: fan the outbox out to endpoints, lease an endpoint to one worker,
take its next batch lane by lane, and record each attempt.

On SQLite every transaction here writes first: a transaction that read first and then
wrote would fail at once, without waiting, had another connection written meanwhile."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from realtime.platform.clock import Clock
from realtime.platform.database import upsert
from realtime.platform.outbox import OutboxRow, expired, write_outbox
from realtime.platform.tables import (
    teaser_messages,
    webhook_deliveries,
    webhook_endpoints,
    webhook_outbox,
)
from realtime.webhooks.sender import Attempt

endpoints = webhook_endpoints.c
deliveries = webhook_deliveries.c
outbox = webhook_outbox.c
messages = teaser_messages.c

FAN_OUT_BATCH = 500
# A batch is up to LANES sessions, sent side by side, each up to PER_LANE events in order.
LANES = 4
PER_LANE = 25
EXPIRED_BATCH = 2000
RETENTION_MS = 7 * 86_400_000


@dataclass(frozen=True)
class RetryPolicy:
    base: float  # seconds
    cap: float
    retry_for_ms: int
    disable_after_ms: int

    def delay(self, failures: int) -> float:
        """base + random(0, min(cap, base·2^(failures-1))): never less than base apart,
        spread so that receivers coming back are not met by every retry at once."""
        exponent = min(max(failures - 1, 0), 40)
        return self.base + random.uniform(0, min(self.cap, self.base * 2**exponent))


@dataclass(frozen=True)
class Lease:
    endpoint_id: int
    site_id: str
    number: int
    url: str
    secrets: tuple[str, ...]  # the current one first; a rotated one for its last day


@dataclass(frozen=True)
class Pending:
    id: int
    event_id: str
    type: str
    session_id: str
    payload: dict[str, Any]
    event_created_at: int
    attempts: int
    created_at: int


@dataclass(frozen=True)
class Recorded:
    leased: bool  # still this worker's to send
    disabled: str | None = None  # why the endpoint was disabled, if it was now


class DeliveryQueue:
    def __init__(self, engine: AsyncEngine, *, clock: Clock, holder: str, lease_ms: int) -> None:
        self.engine = engine
        self.clock = clock
        self.holder = holder
        self.lease_ms = lease_ms

    async def fan_out(self) -> int:
        """One delivery per new event and endpoint that takes it; how many events."""
        now = self.clock()
        new = (
            select(outbox.seq)
            .where(outbox.fanned_out_at.is_(None))
            .order_by(outbox.seq)
            .limit(FAN_OUT_BATCH)
            .with_for_update(skip_locked=True)
        )
        taken = (
            update(webhook_outbox)
            .where(outbox.seq.in_(new.scalar_subquery()))
            .values(fanned_out_at=now)
            .returning(
                outbox.seq, outbox.site_id, outbox.type, outbox.session_id, outbox.created_at
            )
        )
        async with self.engine.begin() as connection:
            events = (await connection.execute(taken)).all()
            if events:
                await self._queue(connection, events, now)
        return len(events)

    async def _queue(self, connection: AsyncConnection, events: Sequence[Any], now: int) -> None:
        sites = sorted({event.site_id for event in events})
        targets = (
            await connection.execute(
                select(endpoints.id, endpoints.site_id, endpoints.events, endpoints.created_at)
                .where(endpoints.site_id.in_(sites))
                .where(endpoints.disabled_at.is_(None), endpoints.removed_at.is_(None))
            )
        ).all()
        rows = [
            {"endpoint_id": target.id, "event_seq": event.seq, "session_id": event.session_id}
            for event in sorted(events, key=lambda e: e.seq)
            for target in targets
            if target.site_id == event.site_id
            and event.created_at >= target.created_at
            and (not target.events or event.type in target.events)
        ]
        if not rows:
            return
        blocked = await _blocked_until(connection, rows)
        for row in rows:
            waits = blocked.get((row["endpoint_id"], row["session_id"]), now)
            row |= {"status": "pending", "attempts": 0, "created_at": now}
            row["next_attempt_at"] = max(now, waits)
        statement = upsert(connection, webhook_deliveries).values(rows)
        await connection.execute(
            statement.on_conflict_do_nothing(index_elements=["endpoint_id", "event_seq"])
        )

    async def lease_due(self, skip: set[int], room: int) -> list[Lease]:
        """Lease up to `room` endpoints with work due that no worker is sending to."""
        now = self.clock()
        due = exists().where(
            deliveries.endpoint_id == endpoints.id,
            deliveries.status == "pending",
            deliveries.next_attempt_at <= now,
        )
        free = (
            select(endpoints.id)
            .where(
                endpoints.disabled_at.is_(None),
                endpoints.removed_at.is_(None),
                or_(endpoints.claimed_until.is_(None), endpoints.claimed_until <= now),
                due,
            )
            .order_by(endpoints.claimed_until.nulls_first(), endpoints.id)
            .limit(room)
            .with_for_update(skip_locked=True)
        )
        if skip:  # this worker's own, still sending: their leases are live anyway
            free = free.where(endpoints.id.not_in(sorted(skip)))
        statement = (
            update(webhook_endpoints)
            .where(endpoints.id.in_(free.scalar_subquery()))
            .values(claimed_by=self.holder, claimed_until=now + self.lease_ms)
            .returning(
                endpoints.id,
                endpoints.site_id,
                endpoints.number,
                endpoints.url,
                endpoints.secret,
                endpoints.previous_secret,
                endpoints.previous_secret_until,
            )
        )
        async with self.engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return [_lease(row, now) for row in rows]

    async def batch(self, lease: Lease) -> list[list[Pending]]:
        """The endpoint's next lanes: per session, its due events in order, up to the first
        that is not due (an earlier event still failing holds back those after it)."""
        now = self.clock()
        lanes = (
            select(deliveries.session_id)
            .where(
                deliveries.endpoint_id == lease.endpoint_id,
                deliveries.status == "pending",
                deliveries.next_attempt_at <= now,
            )
            .group_by(deliveries.session_id)
            .order_by(func.min(deliveries.event_seq))
            .limit(LANES)
        )
        place = (
            func.row_number()
            .over(partition_by=deliveries.session_id, order_by=deliveries.event_seq)
            .label("place")
        )
        ranked = (
            select(webhook_deliveries, place)
            .where(
                deliveries.endpoint_id == lease.endpoint_id,
                deliveries.status == "pending",
                deliveries.session_id.in_(lanes.scalar_subquery()),
            )
            .subquery()
        )
        picked = (
            select(
                ranked,
                outbox.event_id,
                outbox.type,
                outbox.payload,
                outbox.created_at.label("event_created_at"),
            )
            .join(webhook_outbox, outbox.seq == ranked.c.event_seq)
            .where(ranked.c.place <= PER_LANE)
            .order_by(ranked.c.session_id, ranked.c.event_seq)
        )
        async with self.engine.begin() as connection:
            # Written first (see the module's note): the lease, renewed.
            if not await self._renew(connection, lease, now):
                return []
            rows = (await connection.execute(picked)).all()
            batch = _lanes(rows, now)
            ids = [each.id for lane in batch for each in lane]
            if ids:
                await connection.execute(
                    update(webhook_deliveries)
                    .where(deliveries.id.in_(ids))
                    .values(claimed_by=self.holder, claimed_until=now + self.lease_ms)
                )
        return batch

    async def delivered(self, lease: Lease, pending: Pending, attempt: Attempt) -> Recorded:
        now = self.clock()
        async with self.engine.begin() as connection:
            await connection.execute(
                update(webhook_deliveries)
                .where(deliveries.id == pending.id)
                .values(status="delivered", delivered_at=now, **_attempted(attempt, now))
            )
            await connection.execute(
                update(webhook_endpoints)
                .where(endpoints.id == lease.endpoint_id)
                .values(failing_since=None, last_delivered_at=now)
            )
            return Recorded(await self._renew(connection, lease, now))

    async def failed(
        self, lease: Lease, pending: Pending, attempt: Attempt, policy: RetryPolicy
    ) -> Recorded:
        now = self.clock()
        failures = pending.attempts + 1
        give_up = now >= pending.created_at + policy.retry_for_ms
        next_at = now + int(policy.delay(failures) * 1000)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(webhook_deliveries)
                .where(deliveries.id == pending.id)
                .values(
                    status="failed" if give_up else "pending",
                    next_attempt_at=next_at,
                    **_attempted(attempt, now),
                )
            )
            if not give_up:  # the session's later events wait with it
                await connection.execute(
                    update(webhook_deliveries)
                    .where(
                        deliveries.endpoint_id == lease.endpoint_id,
                        deliveries.session_id == pending.session_id,
                        deliveries.status == "pending",
                        deliveries.next_attempt_at < next_at,
                        deliveries.id != pending.id,
                    )
                    .values(next_attempt_at=next_at)
                )
            since = (
                await connection.execute(
                    update(webhook_endpoints)
                    .where(endpoints.id == lease.endpoint_id)
                    .values(failing_since=func.coalesce(endpoints.failing_since, now))
                    .returning(endpoints.failing_since)
                )
            ).scalar_one()
            reason = _disable_reason(attempt, int(since), now, policy)
            if reason is not None:
                await disable(connection, lease.endpoint_id, reason, now)
                return Recorded(False, reason)
            return Recorded(await self._renew(connection, lease, now))

    async def release(self, lease: Lease) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(webhook_endpoints)
                .where(endpoints.id == lease.endpoint_id, endpoints.claimed_by == self.holder)
                .values(claimed_by=None, claimed_until=None)
            )

    async def _renew(self, connection: AsyncConnection, lease: Lease, now: int) -> bool:
        renewed = await connection.execute(
            update(webhook_endpoints)
            .where(
                endpoints.id == lease.endpoint_id,
                endpoints.claimed_by == self.holder,
                endpoints.disabled_at.is_(None),
                endpoints.removed_at.is_(None),
            )
            .values(claimed_until=now + self.lease_ms)
        )
        return bool(renewed.rowcount == 1)

    async def report_expired(self, sites: Sequence[str], since: int, until: int) -> int:
        """teaser.expired for each message of these sites that expired unconsumed within
        (since, until]; each event's id is its message's, so a second sweep adds nothing.
        Returns how far it got: `until`, or less when there were more than a batch."""
        found = (
            select(
                messages.id,
                messages.site_id,
                messages.session_id,
                messages.priority,
                messages.created_at,
                messages.expires_at,
            )
            .where(
                messages.expires_at > since,
                messages.expires_at <= until,
                messages.consumed_at.is_(None),
                messages.site_id.in_(list(sites)),
            )
            .order_by(messages.expires_at)
            .limit(EXPIRED_BATCH)
        )
        now = self.clock()
        async with self.engine.connect() as connection:
            rows = [row._mapping for row in (await connection.execute(found)).all()]
        if rows:
            events: list[OutboxRow] = [expired(row, now) for row in rows]
            async with self.engine.begin() as connection:
                await connection.run_sync(write_outbox, events)
        if len(rows) == EXPIRED_BATCH:
            return int(rows[-1]["expires_at"]) - 1  # the rest of that millisecond next time
        return until

    async def purge(self) -> None:
        """Finished deliveries, and events every endpoint is done with, after a week."""
        cutoff = self.clock() - RETENTION_MS
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(webhook_deliveries).where(
                    deliveries.status != "pending", deliveries.created_at < cutoff
                )
            )
            unreferenced = ~exists().where(deliveries.event_seq == outbox.seq)
            await connection.execute(
                delete(webhook_outbox).where(
                    outbox.created_at < cutoff, outbox.fanned_out_at.is_not(None), unreferenced
                )
            )


async def disable(connection: AsyncConnection, endpoint_id: int, reason: str, now: int) -> None:
    """Stop sending to the endpoint; what it still had pending fails, saying why."""
    await connection.execute(
        update(webhook_endpoints)
        .where(endpoints.id == endpoint_id)
        .values(disabled_at=now, disabled_reason=reason, claimed_by=None, claimed_until=None)
    )
    await connection.execute(
        update(webhook_deliveries)
        .where(deliveries.endpoint_id == endpoint_id, deliveries.status == "pending")
        .values(status="failed", last_error=f"endpoint disabled: {reason}", claimed_by=None)
    )


async def _blocked_until(
    connection: AsyncConnection, rows: list[dict[str, Any]]
) -> dict[tuple[int, str], int]:
    """Per (endpoint, session) of the new rows, until when its pending events wait."""
    ids = sorted({row["endpoint_id"] for row in rows})
    sessions = sorted({row["session_id"] for row in rows})
    found = await connection.execute(
        select(deliveries.endpoint_id, deliveries.session_id, func.max(deliveries.next_attempt_at))
        .where(
            deliveries.status == "pending",
            deliveries.endpoint_id.in_(ids),
            deliveries.session_id.in_(sessions),
        )
        .group_by(deliveries.endpoint_id, deliveries.session_id)
    )
    return {(endpoint, session): int(until) for endpoint, session, until in found}


def _lanes(rows: Sequence[Any], now: int) -> list[list[Pending]]:
    lanes: dict[str, list[Pending]] = {}
    stopped: set[str] = set()
    for row in rows:
        if row.session_id in stopped:
            continue
        if row.next_attempt_at > now:
            stopped.add(row.session_id)  # waits for its turn, and so do those after it
            continue
        lanes.setdefault(row.session_id, []).append(
            Pending(
                id=row.id,
                event_id=row.event_id,
                type=row.type,
                session_id=row.session_id,
                payload=row.payload,
                event_created_at=row.event_created_at,
                attempts=row.attempts,
                created_at=row.created_at,
            )
        )
    return list(lanes.values())


def _lease(row: Any, now: int) -> Lease:
    keys = [row.secret]
    if row.previous_secret and (row.previous_secret_until or 0) > now:
        keys.append(row.previous_secret)
    return Lease(row.id, row.site_id, row.number, row.url, tuple(keys))


def _attempted(attempt: Attempt, now: int) -> dict[str, Any]:
    return {
        "attempts": deliveries.attempts + 1,
        "last_status_code": attempt.status_code,
        "last_latency_ms": attempt.latency_ms,
        "last_error": attempt.error,
        "last_response": attempt.response or None,
        "last_attempt_at": now,
        "claimed_by": None,
        "claimed_until": None,
    }


def _disable_reason(attempt: Attempt, since: int, now: int, policy: RetryPolicy) -> str | None:
    if attempt.gone:
        return "the receiver answered 410 Gone"
    if now - since >= policy.disable_after_ms:
        days = policy.disable_after_ms / 86_400_000
        last = attempt.error or f"answered {attempt.status_code}"
        return f"every attempt failed for {days:g} days (the last: {last})"
    return None
