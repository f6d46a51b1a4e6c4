"""What an operator's dashboard reads about one site: the metric cards, and the feed of
events, teaser sends and deliveries, newest first, as the API, the live socket and the
export all show it. Queries only: nothing here writes."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select, true, union
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.teaser import Priority
from realtime.insight.feed_items import Cursor, Kind, Refs, feed_item, sort_key
from realtime.platform.clock import Clock, now_ms
from realtime.platform.tables import teaser_messages, teaser_polls, visitor_sessions
from realtime.platform.tables import webhook_events_internal as events_table

HIGH_SCORE = 50
ONLINE_WINDOW_MS = 20_000
ACTIVE_WINDOW_MS = 3_600_000
MAX_PAGE = 500
MAX_SEARCH = 200
MAX_EPOCH_DIGITS = 15  # epoch milliseconds until the year 33658; more is not a time
PERIODS_MS = {"1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000}

events = events_table.c
messages = teaser_messages.c
visitors = visitor_sessions.c
polls = teaser_polls.c


class FeedFilter(StrEnum):
    ALL = "all"
    AI = "ai"
    HIGH_SCORE = "high_score"


@dataclass(frozen=True)
class View:
    """The slice of the feed an operator looks at: a filter, a search, a period."""

    filter: FeedFilter = FeedFilter.ALL
    search: str = ""
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    next: str | None


class Analytics:
    def __init__(
        self, engine: AsyncEngine, *, clock: Clock = now_ms, socket_presence_ms: int = 30_000
    ) -> None:
        self.engine = engine
        self.clock = clock
        # An idle socket proves itself only at each heartbeat (then a batched write), so it
        # counts as online for that long after its last mark; a poll for ONLINE_WINDOW_MS.
        self.socket_presence_ms = max(ONLINE_WINDOW_MS, socket_presence_ms)

    def online(self, last_seen: int, transport: str, now: int) -> bool:
        window = self.socket_presence_ms if transport == "websocket" else ONLINE_WINDOW_MS
        return last_seen >= now - window

    async def stats(self, site_id: str, view: View = View()) -> dict[str, Any]:
        now = self.clock()
        async with self.engine.connect() as connection:
            total, ai, average = (await connection.execute(self._event_totals(site_id, view))).one()
            active = (await connection.execute(self._active(site_id, now))).scalar_one()
            online = (await connection.execute(self._online(site_id, now))).scalar_one()
            sent, by_socket, by_poll, pending = (
                await connection.execute(self._message_totals(site_id, view, now))
            ).one()
        sent, by_socket, by_poll, pending = _counts(sent, by_socket, by_poll, pending)
        return {
            "totalEvents": int(total),
            "aiTriggers": int(ai or 0),
            "activeSessions": int(active),
            "averageScore": None if average is None else round(float(average), 1),
            "onlineNow": int(online),
            "messages": {
                "sent": sent,
                "delivered": by_socket + by_poll,
                "deliveredWebsocket": by_socket,
                "deliveredPoll": by_poll,
                "pending": pending,
                "expired": sent - by_socket - by_poll - pending,
            },
        }

    async def feed(
        self, site_id: str, view: View, before: Cursor | None = None, limit: int = 100
    ) -> FeedPage:
        limit = max(1, min(limit, MAX_PAGE))
        now = self.clock()
        # Each kind reads at most `limit` rows along its own index; the page is the newest
        # `limit` of their union.
        pages: list[list[dict[str, Any]]] = []
        async with self.engine.connect() as connection:
            for kind in Kind:
                statement = _with_facts(
                    kind,
                    self._branch(kind, site_id, view)
                    .where(_after(kind, before))
                    .order_by(_at(kind).desc(), _ref(kind).desc())
                    .limit(limit),
                )
                pages.append(
                    [feed_item(kind, row, now) for row in await connection.execute(statement)]
                )
        items = list(islice(heapq.merge(*pages, key=sort_key, reverse=True), limit))
        return FeedPage(items, items[-1]["cursor"] if len(items) == limit else None)

    async def items(self, site_id: str, view: View, refs: Refs) -> list[dict[str, Any]]:
        """The feed items a batch of live activity names, as far as they match `view`."""
        now = self.clock()
        found: list[dict[str, Any]] = []
        async with self.engine.connect() as connection:
            for kind, statement in self._by_refs(site_id, view, refs):
                found += [feed_item(kind, row, now) for row in await connection.execute(statement)]
        return sorted(found, key=sort_key, reverse=True)

    async def export(
        self, site_id: str, view: View, batch: int = MAX_PAGE
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of the view, newest first, read page by page so memory stays flat."""
        cursor: Cursor | None = None
        while True:
            page = await self.feed(site_id, view, cursor, batch)
            for item in page.items:
                yield item
            if page.next is None:
                return
            cursor = Cursor.parse(page.next)

    def _by_refs(self, site_id: str, view: View, refs: Refs) -> Iterable[tuple[Kind, Select[Any]]]:
        named: list[tuple[Kind, ColumnElement[Any], Sequence[object]]] = [
            (Kind.EVENT, events.id, refs.events),
            (Kind.TEASER_SENT, messages.id, refs.sent),
            (Kind.TEASER_DELIVERED, messages.id, refs.delivered),
        ]
        for kind, column, ids in named:
            if ids:
                picked = self._branch(kind, site_id, view).where(column.in_(ids))
                yield kind, _with_facts(kind, picked)

    def _branch(self, kind: Kind, site_id: str, view: View) -> Select[Any]:
        if kind is Kind.EVENT:
            return self._events(site_id, view)
        if kind is Kind.TEASER_SENT:
            return self._sent(site_id, view)
        return self._delivered(site_id, view)

    def _events(self, site_id: str, view: View) -> Select[Any]:
        conditions = [events.site_id == site_id, *_period(events.created_at, view)]
        if view.filter is FeedFilter.AI:
            # Every automatic decision: the teasers sent, and the sessions held out.
            conditions.append(or_(events.ai_triggered == true(), events.held_out == true()))
        elif view.filter is FeedFilter.HIGH_SCORE:
            conditions.append(events.score >= HIGH_SCORE)
        if view.search:
            fields = [
                events.session_id,
                *(
                    events.payload[key].as_string()
                    for key in ("path", "customerId", "customerEmail")
                ),
            ]
            conditions.append(
                or_(
                    *(f.icontains(view.search, autoescape=True) for f in fields),
                    events.session_id.in_(_known_as(site_id, view.search)),
                )
            )
        return select(events_table).where(*conditions)

    def _sent(self, site_id: str, view: View) -> Select[Any]:
        return self._teasers(site_id, view, messages.created_at)

    def _delivered(self, site_id: str, view: View) -> Select[Any]:
        return self._teasers(site_id, view, messages.consumed_at).where(
            messages.consumed_at.is_not(None)
        )

    def _teasers(self, site_id: str, view: View, at: ColumnElement[Any]) -> Select[Any]:
        conditions = [messages.site_id == site_id, *_period(at, view)]
        if view.filter is FeedFilter.AI:
            conditions.append(messages.priority == Priority.AUTO.value)
        elif view.filter is FeedFilter.HIGH_SCORE:
            conditions.append(false())  # a score belongs to events, not to teasers
        if view.search:
            fields = (messages.session_id, messages.message)
            conditions.append(
                or_(
                    *(f.icontains(view.search, autoescape=True) for f in fields),
                    messages.session_id.in_(_known_as(site_id, view.search)),
                )
            )
        return select(teaser_messages).where(*conditions)

    @staticmethod
    def _event_totals(site_id: str, view: View) -> Select[Any]:
        ai = func.sum(case((events.ai_triggered == true(), 1), else_=0))
        return select(func.count(), ai, func.avg(events.score)).where(
            events.site_id == site_id, *_period(events.created_at, view)
        )

    @staticmethod
    def _active(site_id: str, now: int) -> Select[Any]:
        since = now - ACTIVE_WINDOW_MS
        seen = union(
            select(visitors.session_id).where(
                visitors.site_id == site_id, visitors.last_seen >= since
            ),
            select(polls.session_id).where(polls.site_id == site_id, polls.last_seen >= since),
        ).subquery()
        return select(func.count()).select_from(seen)

    def _online(self, site_id: str, now: int) -> Select[Any]:
        by_socket = and_(
            polls.last_transport == "websocket", polls.last_seen >= now - self.socket_presence_ms
        )
        return select(func.count()).where(
            polls.site_id == site_id,
            polls.last_seen >= now - self.socket_presence_ms,
            or_(polls.last_seen >= now - ONLINE_WINDOW_MS, by_socket),
        )

    @staticmethod
    def _message_totals(site_id: str, view: View, now: int) -> Select[Any]:
        def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((condition, 1), else_=0))

        waiting = and_(messages.consumed_at.is_(None), messages.expires_at > now)
        return select(
            func.count(),
            count(messages.delivered_via == "websocket"),
            count(messages.delivered_via == "poll"),
            count(waiting),
        ).where(messages.site_id == site_id, *_period(messages.created_at, view))


def _known_as(site_id: str, search: str) -> Select[Any]:
    """The site's sessions whose customer id or e-mail holds `search`, whichever event
    told it: found once per query, not joined to every row (joined, a search that matched
    a few of 100,000 events took twice as long on SQLite)."""
    known = (visitors.customer_id, visitors.customer_email)
    return select(visitors.session_id).where(
        visitors.site_id == site_id,
        or_(*(f.icontains(search, autoescape=True) for f in known)),
    )


def _with_facts(kind: Kind, statement: Select[Any]) -> Select[Any]:
    """The rows `statement` picks, newest first, with what their session is known by now
    beside them: the first touch's UTM and time zone (from the state, as visitors.py keeps
    it) and who the visitor is, whatever each row's own payload says. Joined after the
    pick, so the state's JSON (up to 100 paths) is parsed for a page's rows only, whatever
    plan the database makes for the pick: joined inside, PostgreSQL without fresh
    statistics hash-joined and parsed every event's state, 9 s for 100,000 events."""
    picked = statement.subquery("picked")
    facts = visitor_sessions.alias("facts")
    joined = picked.outerjoin(
        facts, and_(facts.c.site_id == picked.c.site_id, facts.c.session_id == picked.c.session_id)
    )
    at, ref = picked.c[_at(kind).name], picked.c[_ref(kind).name]
    columns = (
        facts.c.state[("utm", "utm_source")].as_string().label("visitor_utm_source"),
        facts.c.state[("utm", "utm_medium")].as_string().label("visitor_utm_medium"),
        facts.c.state[("utm", "utm_campaign")].as_string().label("visitor_utm_campaign"),
        facts.c.customer_id.label("visitor_customer_id"),
        facts.c.customer_email.label("visitor_customer_email"),
        facts.c.state["time_zone"].as_string().label("visitor_time_zone"),
        facts.c.first_seen.label("visitor_first_seen"),
    )
    return select(picked, *columns).select_from(joined).order_by(at.desc(), ref.desc())


def _period(at: ColumnElement[Any], view: View) -> list[ColumnElement[bool]]:
    conditions = []
    if view.since is not None:
        conditions.append(at >= view.since)
    if view.until is not None:
        conditions.append(at < view.until)
    return conditions


def _at(kind: Kind) -> ColumnElement[Any]:
    return {
        Kind.EVENT: events.created_at,
        Kind.TEASER_SENT: messages.created_at,
        Kind.TEASER_DELIVERED: messages.consumed_at,
    }[kind]


def _ref(kind: Kind) -> ColumnElement[Any]:
    return events.id if kind is Kind.EVENT else messages.seq


def _after(kind: Kind, before: Cursor | None) -> ColumnElement[bool]:
    """Rows of `kind` that come after `before` in newest-first order."""
    if before is None:
        return true()
    at, ref = _at(kind), _ref(kind)
    if kind < before.kind:
        return at <= before.at
    if kind > before.kind:
        return at < before.at
    return or_(at < before.at, and_(at == before.at, ref < before.ref))


def _counts(*values: Any) -> tuple[int, ...]:
    return tuple(int(value or 0) for value in values)
