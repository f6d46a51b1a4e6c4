"""Which teasers worked: every teaser shown in a period, whether its visitor then clicked
it and converted, with rates by trigger type, template and traffic source.

Attribution is last-touch within the session: a click or conversion that names a teaser
(payload.teaserId) counts for that teaser; one that names none counts for the teaser the
session was shown most recently before it. A goal and a custom event count the same way,
but only within the site's attribution window after that teaser was last shown."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.insight.experiment import converted, enter, report
from realtime.platform.clock import Clock, iso_time, now_ms
from realtime.platform.tables import teaser_messages
from realtime.platform.tables import webhook_events_internal as events_table

FUNNEL_EVENTS = ("teaser_shown", "teaser_click", "conversion", "track", "goal")
ATTRIBUTION_MODEL = "last_shown_within"
DEFAULT_WINDOW_MINUTES = 30
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DEFAULT_PERIOD_MS = 7 * DAY_MS
MAX_POINTS = 400  # of the funnel over time: days enough for a year and a month
# A teaser shown early in the period may have been triggered shortly before it began.
TRIGGER_LOOKBACK_MS = 86_400_000
MAX_EVENTS = 200_000  # a bound on one analysis' memory; about 20 MB of rows
IN_CHUNK = 500
NO_SOURCE = "(direct)"
UNKNOWN = "(unknown)"

events = events_table.c
messages = teaser_messages.c


@dataclass
class Shown:
    teaser_id: str
    session_id: str
    at: int
    source: str
    clicked: bool = False
    converted: bool = False
    last_at: int = 0  # when the session was last shown it: the window runs from there
    value: float = 0.0
    # The custom events (track and goal) its session did within the window, by name.
    events: set[str] = field(default_factory=set)
    goals: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Funnel:
    shown: int = 0
    clicked: int = 0
    converted: int = 0
    value: float = 0.0
    events: Counter[str] = field(default_factory=Counter)

    def add(self, teaser: Shown) -> None:
        self.shown += 1
        self.clicked += teaser.clicked
        self.converted += teaser.converted
        self.value += teaser.value
        self.events.update(teaser.events)

    def counts(self) -> dict[str, int]:
        return {"shown": self.shown, "clicked": self.clicked, "converted": self.converted}

    def to_json(self, key: str | None = None) -> dict[str, Any]:
        def rate(part: int) -> float:
            return round(part / self.shown, 4) if self.shown else 0.0

        # Left out when there is none, as a site without goals or events has always read.
        value = round(self.value, 2)
        extra = ({"value": value} if value else {}) | (
            {"events": dict(sorted(self.events.items()))} if self.events else {}
        )
        return (
            ({} if key is None else {"key": key})
            | self.counts()
            | {"clickRate": rate(self.clicked), "conversionRate": rate(self.converted)}
            | extra
        )


@dataclass
class GoalTotal:
    """A goal's every occurrence in the period, and the part credited to a teaser."""

    count: int = 0
    value: float = 0.0
    attributed: int = 0
    attributed_value: float = 0.0

    def to_json(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "count": self.count,
            "value": round(self.value, 2),
            "attributed": self.attributed,
            "attributedValue": round(self.attributed_value, 2),
        }


@dataclass(frozen=True)
class Origin:
    trigger: str  # "auto" | "manual" | UNKNOWN
    template: str


MANUAL = Origin("manual", "(manual)")


def attribute(rows: Iterable[Any], window_ms: int = DEFAULT_WINDOW_MINUTES * 60_000) -> list[Shown]:
    """Funnel events in time order (each with session_id, type, payload, created_at) ->
    each teaser shown, once per session, with its fate."""
    shown: dict[tuple[str, str], Shown] = {}
    latest: dict[str, Shown] = {}
    for row in rows:
        payload: dict[str, Any] = row.payload or {}
        teaser_id = str(payload.get("teaserId") or "")
        key = (row.session_id, teaser_id)
        if row.type == "teaser_shown":
            if not teaser_id:
                continue
            source = (payload.get("utm") or {}).get("utm_source") or NO_SOURCE
            if key not in shown:
                shown[key] = Shown(teaser_id, row.session_id, row.created_at, source)
            shown[key].last_at = row.created_at
            latest[row.session_id] = shown[key]
            continue
        target = shown.get(key) or latest.get(row.session_id)
        if target is None:
            continue
        if row.type == "teaser_click":
            target.clicked = True
        elif row.type == "conversion":
            target.converted = True
            target.value += _value(payload)
        elif row.created_at - target.last_at <= window_ms:
            _custom(target, row.type, payload)
    return list(shown.values())


def _custom(target: Shown, kind: str, payload: dict[str, Any]) -> None:
    """A track or goal event within the window of the teaser it is credited to."""
    name = str(payload.get("name") or "")
    target.events.add(name)
    if kind == "goal":
        target.converted = True
        target.value += _value(payload)
        target.goals.append((name, _value(payload)))


def _value(payload: dict[str, Any]) -> float:
    value = payload.get("value")
    return float(value) if isinstance(value, int | float) else 0.0


def goal_totals(rows: Iterable[Any], teasers: Iterable[Shown]) -> list[dict[str, Any]]:
    """Every goal reached in the rows, by name, and how much of it teasers earned."""
    totals: dict[str, GoalTotal] = defaultdict(GoalTotal)
    for row in rows:
        if row.type == "goal":
            total = totals[str((row.payload or {}).get("name") or "")]
            total.count += 1
            total.value += _value(row.payload or {})
    for teaser in teasers:
        for name, value in teaser.goals:
            totals[name].attributed += 1
            totals[name].attributed_value += value
    ranked = sorted(totals.items(), key=lambda pair: (-pair[1].count, pair[0]))
    return [total.to_json(name) for name, total in ranked]


class Conversions:
    def __init__(self, engine: AsyncEngine, *, clock: Clock = now_ms) -> None:
        self.engine = engine
        self.clock = clock

    async def analyse(
        self,
        site_id: str,
        since: int | None = None,
        until: int | None = None,
        *,
        whole: bool = False,
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
    ) -> dict[str, Any]:
        """The funnel of the teasers shown in [since, until): by default the last week;
        `whole` is all of it, from the UTC day the first teaser was shown. A goal counts
        for a teaser shown within `window_minutes` before it (the site's rules say)."""
        until = self.clock() if until is None else until
        if whole:
            since = 0
        since = until - DEFAULT_PERIOD_MS if since is None else since
        rows = await self._funnel_events(site_id, since, until)
        teasers = attribute(rows, window_minutes * 60_000)
        if whole:
            first = min((t.at for t in teasers), default=until - 1)
            since = first - first % DAY_MS
        # Read once for both: a teaser shown early in the period may have been triggered
        # shortly before it began; the experiment counts only the period's own decisions.
        decisions = await self._decisions(site_id, since - TRIGGER_LOOKBACK_MS, until)
        origins = await self._origins(site_id, [t.teaser_id for t in teasers], decisions)
        manual = [(t.session_id, t.at) for t in teasers if origins.get(t.teaser_id) == MANUAL]
        entries = enter((row for row in decisions if row.created_at >= since), manual)
        converted_sessions = converted(entries, rows, window_minutes * 60_000)
        totals = Funnel()
        groups: dict[str, dict[str, Funnel]] = {
            name: defaultdict(Funnel) for name in ("byTrigger", "byTemplate", "bySource")
        }
        for teaser in teasers:
            origin = origins.get(teaser.teaser_id, Origin(UNKNOWN, UNKNOWN))
            totals.add(teaser)
            groups["byTrigger"][origin.trigger].add(teaser)
            groups["byTemplate"][origin.template].add(teaser)
            groups["bySource"][teaser.source].add(teaser)
        return {
            "since": iso_time(since),
            "until": iso_time(until),
            "totals": totals.to_json(),
            **{name: _ranked(funnels) for name, funnels in groups.items()},
            "overTime": over_time(teasers, since, until, whole),
            "goals": goal_totals(rows, teasers),
            "attribution": {"model": ATTRIBUTION_MODEL, "windowMinutes": window_minutes},
            "experiment": report(entries, converted_sessions, window_minutes),
        }

    async def _funnel_events(self, site_id: str, since: int, until: int) -> Sequence[Any]:
        return await self._in_period(
            site_id,
            since,
            until,
            (events.session_id, events.type, events.payload, events.created_at),
            events.type.in_(FUNNEL_EVENTS),
        )

    async def _decisions(self, site_id: str, since: int, until: int) -> Sequence[Any]:
        """The automatic decisions, oldest first: each teaser sent by the trigger, and each
        time it fired for a session in the holdout."""
        return await self._in_period(
            site_id,
            since,
            until,
            (events.session_id, events.created_at, events.held_out, events.explanation),
            or_(events.ai_triggered == true(), events.held_out == true()),
        )

    async def _in_period(
        self,
        site_id: str,
        since: int,
        until: int,
        columns: tuple[ColumnElement[Any], ...],
        which: ColumnElement[bool],
    ) -> Sequence[Any]:
        """The site's events of [since, until) that `which` picks, oldest first."""
        statement = (
            select(*columns)
            .where(
                events.site_id == site_id,
                which,
                events.created_at >= since,
                events.created_at < until,
            )
            .order_by(events.created_at, events.id)
            .limit(MAX_EVENTS)
        )
        async with self.engine.connect() as connection:
            return (await connection.execute(statement)).all()

    async def _origins(
        self, site_id: str, teaser_ids: list[str], decisions: Sequence[Any]
    ) -> dict[str, Origin]:
        """How each teaser came to be: the automatic trigger's explanation names the
        template; the stored message (kept TEASER_MESSAGE_RETENTION) names its priority."""
        templates: dict[str, str] = {}
        priorities: dict[str, str] = {}
        for row in decisions:
            trigger = (row.explanation or {}).get("trigger") or {}
            if trigger.get("teaserId"):  # sent: a held-out decision names no teaser
                templates[trigger["teaserId"]] = trigger.get("template") or UNKNOWN
        async with self.engine.connect() as connection:
            for start in range(0, len(teaser_ids), IN_CHUNK):
                chunk = teaser_ids[start : start + IN_CHUNK]
                found = await connection.execute(
                    select(messages.id, messages.priority).where(
                        messages.site_id == site_id, messages.id.in_(chunk)
                    )
                )
                priorities.update({row.id: row.priority for row in found})
        return {teaser_id: _origin(teaser_id, templates, priorities) for teaser_id in teaser_ids}


def _origin(teaser_id: str, templates: dict[str, str], priorities: dict[str, str]) -> Origin:
    if teaser_id in templates or priorities.get(teaser_id) == "auto":
        return Origin("auto", templates.get(teaser_id, UNKNOWN))
    if priorities.get(teaser_id) == "manual":
        return MANUAL
    return Origin(UNKNOWN, UNKNOWN)


def over_time(teasers: Iterable[Shown], since: int, until: int, whole: bool) -> dict[str, Any]:
    """Each bucket of [since, until), oldest first, with the teasers first shown in it:
    UTC hours for a period of a day or less, else UTC days; the newest MAX_POINTS of them.
    Bucketed here, not in SQL: the period's funnel events are already loaded (bounded by
    MAX_EVENTS), and integer division of a timestamp reads alike on every database."""
    size = DAY_MS if whole or until - since > DAY_MS else HOUR_MS
    last = (until - 1) - (until - 1) % size
    first = max(since - since % size, last - (MAX_POINTS - 1) * size)
    funnels = {start: Funnel() for start in range(first, last + 1, size)}
    for teaser in teasers:
        funnel = funnels.get(teaser.at - teaser.at % size)
        if funnel is not None:
            funnel.add(teaser)
    return {
        "bucket": "day" if size == DAY_MS else "hour",
        "points": [
            {"start": iso_time(start), **funnel.counts()} for start, funnel in funnels.items()
        ],
    }


def _ranked(funnels: dict[str, Funnel]) -> list[dict[str, Any]]:
    ordered = sorted(funnels.items(), key=lambda pair: (-pair[1].shown, pair[0]))
    return [funnel.to_json(key) for key, funnel in ordered]
