"""Event intake: store each visitor event with the score after it, and send an automatic
teaser when the visitor qualifies and their fatigue budget allows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from realtime.delivery.dispatch import Delivery
from realtime.delivery.teaser import Draft, Priority, Teaser
from realtime.fanout.activity import ActivityFeed
from realtime.platform.clock import Clock, iso_time, now_ms
from realtime.platform.database import upsert
from realtime.platform.errors import NotFound
from realtime.platform.metrics import Metrics
from realtime.platform.outbox import (
    REPORTED_EVENTS,
    OutboxRow,
    Subscriptions,
    WebhookType,
    auto_teaser_sent,
    visitor_event,
    write_outbox,
)
from realtime.platform.tables import (
    of_session,
    teaser_messages,
    visitor_sessions,
    webhook_events_internal,
)
from realtime.targeting.custom_events import CustomEventGate
from realtime.targeting.customers import recall_customer
from realtime.targeting.evaluation import Evaluation, compose, evaluate, may_trigger
from realtime.targeting.events import VisitorEvent
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.scoring import Change, Score, score
from realtime.targeting.templates import GeneratedTeaser, MessageGenerator
from realtime.targeting.triggers import Fatigue
from realtime.targeting.visitors import VisitorState


@dataclass(frozen=True)
class Outcome:
    event_id: int
    score: int
    teaser: Teaser | None
    explanation: dict[str, Any]

    @property
    def triggered(self) -> bool:
        return self.teaser is not None


@dataclass(frozen=True)
class _Evaluated:
    evaluation: Evaluation
    expires_in_ms: int  # of the automatic teaser, if one is sent
    before: Score  # the session's facts before this event, scored by the same rules

    def change(self) -> Change:
        """What this event did to the score; a duplicate does nothing."""
        if self.evaluation.duplicate:
            return Change()
        return self.evaluation.score.since(self.before)


class EventIntake:
    def __init__(
        self,
        engine: AsyncEngine,
        rulebook: RuleBook,
        delivery: Delivery,
        activity: ActivityFeed,
        generator: MessageGenerator,
        metrics: Metrics,
        *,
        clock: Clock = now_ms,
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self.engine = engine
        self.rulebook = rulebook
        self.delivery = delivery
        self.activity = activity
        self.generator = generator
        self.metrics = metrics
        self.clock = clock
        # Which sites' webhook endpoints take which events (realtime/platform/outbox.py).
        self.subscriptions = subscriptions
        self.custom_events = CustomEventGate()
        self._locks: dict[tuple[str, str], _SessionLock] = {}

    async def record(self, event: VisitorEvent, *, from_server: bool = False) -> Outcome:
        """Store `event` and act on it. `from_server`: the shop's backend sent it with the
        site's key, so it may bring a server_only event, and only for a session the site
        already has (the widget reports each session's first page)."""
        if from_server:
            await self._known_session(event)
        self.custom_events.admit(
            event, self.rulebook.for_site(event.site_id), from_server=from_server
        )
        async with self._session_lock(event.site_id, event.session_id):
            evaluated = await self._evaluate(event)
            teaser = await self._send(event, evaluated)
            explanation = _explain(evaluated, teaser)
            total = evaluated.evaluation.score.total
            held_out = evaluated.evaluation.held_out
            event_id = await self._store_event(event, total, teaser, held_out, explanation)
        outcome = Outcome(event_id, total, teaser, explanation)
        self.metrics.events.inc()
        if held_out:
            self.metrics.auto_held_out.inc()
        self._announce(event, outcome)
        return outcome

    async def _evaluate(self, event: VisitorEvent) -> _Evaluated:
        now = self.clock()
        rules = self.rulebook.for_site(event.site_id)
        async with self.engine.begin() as connection:
            state = await self._state_for_update(connection, event, now)
            # Scored before evaluate() changes the state in place.
            before = score(state, rules)
            fatigue = await self._fatigue(connection, event, now) if may_trigger(event) else None
            evaluation = evaluate(state, event, rules, fatigue, now)
            await recall_customer(connection, event.site_id, event.session_id, state)
            await compose(evaluation, rules, self.generator, now)
            await connection.execute(
                update(visitor_sessions)
                .where(
                    visitor_sessions.c.site_id == event.site_id,
                    visitor_sessions.c.session_id == event.session_id,
                )
                .values(
                    state=state.to_json(),
                    score=evaluation.score.total,
                    customer_id=state.customer_id,
                    customer_email=state.customer_email,
                    last_seen=now,
                )
            )
        return _Evaluated(evaluation, rules.trigger.expires_in_seconds * 1000, before)

    async def _known_session(self, event: VisitorEvent) -> None:
        sessions = visitor_sessions.c
        known = select(sessions.session_id).where(
            sessions.site_id == event.site_id, sessions.session_id == event.session_id
        )
        async with self.engine.connect() as connection:
            if (await connection.execute(known)).first() is None:
                raise NotFound(
                    f"no session '{event.session_id}' on site '{event.site_id}' (a session is "
                    "known once its widget has reported an event)",
                    code="session_not_found",
                )

    async def _state_for_update(
        self, connection: AsyncConnection, event: VisitorEvent, now: int
    ) -> VisitorState:
        # Insert first: on SQLite that takes the write lock before anything is read.
        await connection.execute(
            upsert(connection, visitor_sessions)
            .values(
                site_id=event.site_id,
                session_id=event.session_id,
                state={},
                score=0,
                first_seen=now,
                last_seen=now,
            )
            .on_conflict_do_nothing()
        )
        row = (
            await connection.execute(
                select(visitor_sessions.c.state)
                .where(
                    visitor_sessions.c.site_id == event.site_id,
                    visitor_sessions.c.session_id == event.session_id,
                )
                .with_for_update()
            )
        ).scalar_one()
        return VisitorState.from_json(row)

    async def _fatigue(self, connection: AsyncConnection, event: VisitorEvent, now: int) -> Fatigue:
        messages = teaser_messages.c
        manual_pending = case(
            (
                (messages.priority == Priority.MANUAL.value)
                & messages.consumed_at.is_(None)
                & (messages.expires_at > now),
                1,
            ),
            else_=0,
        )
        last, pending = (
            await connection.execute(
                select(
                    func.max(messages.created_at), func.coalesce(func.sum(manual_pending), 0)
                ).where(of_session(event.site_id, event.session_id))
            )
        ).one()
        return Fatigue(last_teaser_at=last, manual_pending=bool(pending))

    async def _send(self, event: VisitorEvent, evaluated: _Evaluated) -> Teaser | None:
        generated = evaluated.evaluation.generated
        if generated is None:
            return None
        draft = Draft(
            event.session_id,
            generated.text,
            Priority.AUTO,
            evaluated.expires_in_ms,
            only_on_path=generated.only_on_path,
        )
        [teaser] = await self.delivery.send(event.site_id, [draft])
        self.metrics.auto_triggers.inc()
        return teaser

    async def _store_event(
        self,
        event: VisitorEvent,
        total: int,
        teaser: Teaser | None,
        held_out: bool,
        explanation: dict[str, Any],
    ) -> int:
        now, payload = self.clock(), event.payload()
        statement = (
            insert(webhook_events_internal)
            .values(
                site_id=event.site_id,
                session_id=event.session_id,
                type=event.type,
                payload=payload,
                score=total,
                ai_triggered=teaser is not None,
                held_out=held_out,
                explanation=explanation,
                created_at=now,
            )
            .returning(webhook_events_internal.c.id)
        )
        # Asked before the transaction: the answer may need a read, and on SQLite the
        # transaction holds the engine's one connection.
        reported = await self._reported(event, teaser, explanation)
        async with self.engine.begin() as connection:
            event_id = int((await connection.execute(statement)).scalar_one())
            if reported:
                # The webhook outbox, in the same transaction as the event it reports.
                rows = _reports(reported, event, event_id, payload, explanation, now)
                await connection.run_sync(write_outbox, rows)
            return event_id

    async def _reported(
        self, event: VisitorEvent, teaser: Teaser | None, explanation: dict[str, Any]
    ) -> list[WebhookType]:
        """The webhook events this event makes, of those the site's endpoints take: a
        shown, clicked or converted teaser (not a replayed event), an automatic teaser."""
        if self.subscriptions is None:
            return []
        kinds = [] if explanation["duplicate"] else [REPORTED_EVENTS.get(event.type)]
        if teaser is not None:
            kinds.append(WebhookType.AUTO_SENT)
        return [
            kind
            for kind in kinds
            if kind is not None and await self.subscriptions.wants(event.site_id, kind)
        ]

    def _announce(self, event: VisitorEvent, outcome: Outcome) -> None:
        self.activity.announce(
            event.site_id,
            "event",
            id=outcome.event_id,
            sessionId=event.session_id,
            type=event.type,
            path=event.path,
            utm=event.utm,
            customerId=event.customer_id,
            score=outcome.score,
            aiTriggered=outcome.triggered,
            at=iso_time(self.clock()),
            teaserId=outcome.teaser.id if outcome.teaser else None,
        )

    @asynccontextmanager
    async def _session_lock(self, site_id: str, session_id: str) -> AsyncIterator[None]:
        """One event at a time per session on this worker (PostgreSQL also locks the row)."""
        key = (site_id, session_id)
        entry = self._locks.setdefault(key, _SessionLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]


@dataclass
class _SessionLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _reports(
    kinds: list[WebhookType],
    event: VisitorEvent,
    event_id: int,
    payload: dict[str, Any],
    explanation: dict[str, Any],
    now: int,
) -> list[OutboxRow]:
    return [
        auto_teaser_sent(event.site_id, event.session_id, explanation, now)
        if kind is WebhookType.AUTO_SENT
        else visitor_event(kind, event_id, event.site_id, event.session_id, payload, now)
        for kind in kinds
    ]


def _wording(generated: GeneratedTeaser) -> dict[str, Any]:
    return {
        "template": generated.template_id,
        "variant": generated.variant,
        "situation": generated.situation,
    }


def _explain(evaluated: _Evaluated, teaser: Teaser | None) -> dict[str, Any]:
    evaluation = evaluated.evaluation
    trigger: dict[str, Any] | None = None
    if evaluation.decision is not None:
        trigger = evaluation.decision.explain()
        generated, withheld = evaluation.generated, evaluation.withheld
        trigger["heldOut"] = withheld is not None
        if withheld is not None:
            # Would have sent this: the template and wording say what it is the baseline of.
            trigger |= {"send": False, "blockedBy": "held_out", **_wording(withheld)}
        elif evaluation.decision.send and generated is None:
            trigger["blockedBy"] = "no_template"
        if generated is not None and teaser is not None:
            trigger |= {**_wording(generated), "teaserId": teaser.id, "message": teaser.message}
    return {
        "score": {
            "total": evaluation.score.total,
            "rules": evaluation.score.explain(),
            "previous": evaluated.before.total,
            **evaluated.change().explain(),
        },
        "duplicate": evaluation.duplicate,
        "trigger": trigger,
    }
