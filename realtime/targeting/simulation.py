"""Dry run: replay a site's recent sessions through a rules file before it goes live, and
how they would split into its wordings and holdout."""

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
from realtime.targeting.experiments import wordings
from realtime.targeting.rules import RuleSet
from realtime.targeting.templates import TemplateGenerator
from realtime.targeting.triggers import Fatigue
from realtime.targeting.visitors import VisitorState


@dataclass(frozen=True)
class Group:
    """Where a session's first qualifying decision put it: a template's wording (variant
    None for a template without variants), or the holdout."""

    template: str
    variant: str | None
    held_out: bool


@dataclass
class SessionReplay:
    session_id: str
    events: int = 0
    final_score: int = 0
    actual_auto_teasers: int = 0
    would_send: list[dict[str, Any]] = field(default_factory=list)
    # What a session in the holdout would have been sent: not a teaser, so not counted.
    withheld: list[dict[str, Any]] = field(default_factory=list)
    group: Group | None = None


@dataclass(frozen=True)
class Share:
    """A group's sessions, their share of the whole they belong to (None of no sessions),
    and the share the rules' weights or holdout expect (None where nothing is chosen).
    `name`: the wording's, "holdout", or None for a template's only text."""

    name: str | None
    sessions: int
    share: float | None
    expected: float | None


@dataclass(frozen=True)
class TemplateSplit:
    template: str
    sessions: int  # sent a teaser by it first: the holdout is not among them
    wordings: tuple[Share, ...]


@dataclass(frozen=True)
class Split:
    """The qualifying sessions by their first decision, each in its template's wording or
    the holdout."""

    qualifying: int
    holdout: Share
    templates: tuple[TemplateSplit, ...]
    experiment: bool  # whether the rules have any variants or a holdout to split by


class Simulation(list[SessionReplay]):
    """The replayed sessions, in the order they first came, and the rules they were
    replayed through: a list, so what iterates the sessions needs nothing more."""

    def __init__(self, replays: Sequence[SessionReplay], rules: RuleSet) -> None:
        super().__init__(replays)
        self.rules = rules

    def split(self) -> Split:
        """The qualifying sessions by their first decision: the holdout's share is of
        them all, a wording's of its template's sessions, so each compares with its
        weight."""
        return _split(self, self.rules)


async def simulate(engine: AsyncEngine, site_id: str, rules: RuleSet, since_ms: int) -> Simulation:
    events = webhook_events_internal.c
    query = (
        select(events.session_id, events.payload, events.ai_triggered, events.created_at)
        .where(events.site_id == site_id, events.created_at >= since_ms)
        .order_by(events.id)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
        manual = await _manual_sends(connection, site_id, since_ms)
        return Simulation(await _replay(connection, site_id, rules, rows, manual), rules)


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
        await compose(evaluation, rules, generator, now)
        teaser = evaluation.generated or evaluation.withheld
        if teaser is None or evaluation.decision is None:
            continue
        entry = {
            "at": now,
            "template": teaser.template_id,
            "variant": teaser.variant,
            "message": teaser.text,
            "reasons": list(evaluation.decision.reasons),
        }
        (replay.withheld if evaluation.held_out else replay.would_send).append(entry)
        if replay.group is None:
            replay.group = Group(teaser.template_id, teaser.variant, evaluation.held_out)
    return list(replays.values())


def _split(replays: Sequence[SessionReplay], rules: RuleSet) -> Split:
    groups = [replay.group for replay in replays if replay.group is not None]
    held = sum(group.held_out for group in groups)
    sent = [group for group in groups if not group.held_out]
    templates = []
    for template in rules.templates:
        mine = [group for group in sent if group.template == template.id]
        choices = wordings(template)
        if not choices and not mine:
            continue  # nothing to choose and nobody sent it: a row would say nothing
        total = sum(variant.weight for variant in choices)
        rows = tuple(
            _share(
                variant.name,
                sum(group.variant == variant.name for group in mine),
                len(mine),
                variant.weight / total,
            )
            for variant in choices
        ) or (_share(None, len(mine), len(mine), None),)
        templates.append(TemplateSplit(template.id, len(mine), rows))
    holdout = _share("holdout", held, len(groups), rules.trigger.holdout)
    experiment = rules.trigger.holdout > 0 or any(t.variants for t in rules.templates)
    return Split(len(groups), holdout, tuple(templates), experiment)


def _share(name: str | None, sessions: int, whole: int, expected: float | None) -> Share:
    return Share(name, sessions, sessions / whole if whole else None, expected)


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
