"""Dry run: replay a site's recent sessions through a rules file before it goes live."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from realtime.delivery.teaser import Priority
from realtime.platform.tables import teaser_messages, webhook_events_internal
from realtime.targeting.customers import recall_customer
from realtime.targeting.evaluation import compose, evaluate
from realtime.targeting.events import VisitorEvent
from realtime.targeting.rules import RuleSet
from realtime.targeting.templates import TemplateGenerator
from realtime.targeting.triggers import Fatigue
from realtime.targeting.visitors import VisitorState


@dataclass
class SessionReplay:
    session_id: str
    events: int = 0
    final_score: int = 0
    actual_auto_teasers: int = 0
    would_send: list[dict[str, Any]] = field(default_factory=list)


async def simulate(
    engine: AsyncEngine, site_id: str, rules: RuleSet, since_ms: int
) -> list[SessionReplay]:
    events = webhook_events_internal.c
    query = (
        select(events.session_id, events.payload, events.ai_triggered, events.created_at)
        .where(events.site_id == site_id, events.created_at >= since_ms)
        .order_by(events.id)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
        manual = await _manual_sends(connection, site_id, since_ms)
        return await _replay(connection, site_id, rules, rows, manual)


async def _replay(
    connection: AsyncConnection,
    site_id: str,
    rules: RuleSet,
    rows: Sequence[Row[Any, Any, Any, Any]],
    manual: dict[str, list[int]],
) -> list[SessionReplay]:
    replays: dict[str, SessionReplay] = {}
    states: dict[str, VisitorState] = {}
    generator = TemplateGenerator()
    for row in rows:
        replay = replays.setdefault(row.session_id, SessionReplay(row.session_id))
        state = states.setdefault(row.session_id, VisitorState())
        replay.events += 1
        replay.actual_auto_teasers += int(bool(row.ai_triggered))
        event = _event(site_id, row.session_id, row.payload)
        if event.custom and event.name not in rules.events:
            continue  # these rules would have refused it
        now = row.created_at
        last = (
            max([t for t in manual.get(row.session_id, []) if t <= now] + [state.last_auto_at or 0])
            or None
        )
        evaluation = evaluate(state, event, rules, Fatigue(last, False), now)
        if evaluation.duplicate:
            continue
        replay.final_score = evaluation.score.total
        await recall_customer(connection, site_id, row.session_id, state)
        generated = await compose(evaluation, rules, generator, now)
        if generated is not None and evaluation.decision is not None:
            replay.would_send.append(
                {
                    "at": now,
                    "template": generated.template_id,
                    "message": generated.text,
                    "reasons": list(evaluation.decision.reasons),
                }
            )
    return list(replays.values())


async def _manual_sends(connection: Any, site_id: str, since_ms: int) -> dict[str, list[int]]:
    messages = teaser_messages.c
    rows = await connection.execute(
        select(messages.session_id, messages.created_at).where(
            messages.site_id == site_id,
            messages.priority == Priority.MANUAL.value,
            messages.created_at >= since_ms,
        )
    )
    sends: dict[str, list[int]] = {}
    for session_id, created_at in rows:
        sends.setdefault(session_id, []).append(created_at)
    return sends


def _event(site_id: str, session_id: str, payload: dict[str, Any]) -> VisitorEvent:
    return VisitorEvent(
        site_id=site_id,
        session_id=session_id,
        type=payload.get("type", "page_view"),
        path=payload.get("path") or "/",
        utm=payload.get("utm") or {},
        customer_id=payload.get("customerId"),
        customer_email=payload.get("customerEmail"),
        seconds_on_page=payload.get("secondsOnPage"),
        ts=payload.get("ts"),
        time_zone=payload.get("timeZone"),
        teaser_id=payload.get("teaserId"),
        value=payload.get("value"),
        name=payload.get("name"),
        props=payload.get("props") or {},
        event_id=payload.get("eventId"),
    )
