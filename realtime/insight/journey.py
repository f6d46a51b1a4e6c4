"""One visitor session's story for the dashboard: pages and time on each, score changes
and why, teasers sent and their fate (delivered how, shown, clicked), and conversions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.insight.analytics import Analytics
from realtime.insight.conversions import FUNNEL_EVENTS, attribute
from realtime.platform.clock import Clock, iso_time, now_ms
from realtime.platform.errors import NotFound
from realtime.platform.tables import of_session, teaser_messages, teaser_polls, visitor_sessions
from realtime.platform.tables import webhook_events_internal as events_table

MAX_EVENTS = 2_000  # the newest ones; a longer session is a bot, not a journey
# A conversion the widget reports, or a goal the shop reports (TeaserWidget.goal, the backend).
CONVERSIONS = frozenset({"conversion", "goal"})

events = events_table.c
messages = teaser_messages.c


class Journeys:
    def __init__(self, engine: AsyncEngine, analytics: Analytics, *, clock: Clock = now_ms):
        self.engine = engine
        self.analytics = analytics
        self.clock = clock

    async def journey(self, site_id: str, session_id: str) -> dict[str, Any]:
        now = self.clock()
        visitor, presence, rows, teasers = await self._load(site_id, session_id)
        if visitor is None and presence is None and not rows and not teasers:
            raise NotFound(f"no session '{session_id}' on this site", code="session_not_found")
        state: dict[str, Any] = visitor.state if visitor is not None else {}
        funnel = (row for row in rows if row.type in FUNNEL_EVENTS)
        fates = {shown.teaser_id: shown for shown in attribute(funnel)}
        timeline = _events_timeline(rows) + [
            entry for teaser in teasers for entry in _teaser_timeline(teaser, fates, now)
        ]
        timeline.sort(key=lambda entry: (entry["at"], entry["order"]))
        online = presence is not None and self.analytics.online(
            presence.last_seen, presence.last_transport, now
        )
        return {
            "sessionId": session_id,
            "customerId": state.get("customer_id"),
            "customerEmail": state.get("customer_email"),
            "utm": state.get("utm") or {},
            "pageViews": state.get("page_views", 0),
            "score": visitor.score if visitor is not None else 0,
            "firstSeen": _iso(visitor.first_seen if visitor is not None else None),
            "lastSeen": _iso(visitor.last_seen if visitor is not None else None),
            "online": online,
            "transport": presence.last_transport if presence is not None else None,
            "lastPresence": _iso(presence.last_seen if presence is not None else None),
            "converted": any(row.type in CONVERSIONS for row in rows),
            "timeline": [_public(entry) for entry in timeline],
        }

    async def _load(
        self, site_id: str, session_id: str
    ) -> tuple[Any, Any, Sequence[Any], Sequence[Any]]:
        visitor_query = select(visitor_sessions).where(
            visitor_sessions.c.site_id == site_id, visitor_sessions.c.session_id == session_id
        )
        presence_query = select(teaser_polls).where(
            teaser_polls.c.site_id == site_id, teaser_polls.c.session_id == session_id
        )
        newest = (
            select(events_table)
            .where(events.site_id == site_id, events.session_id == session_id)
            .order_by(events.created_at.desc(), events.id.desc())
            .limit(MAX_EVENTS)
        )
        teaser_query = (
            select(teaser_messages).where(of_session(site_id, session_id)).order_by(messages.seq)
        )
        async with self.engine.connect() as connection:
            visitor = (await connection.execute(visitor_query)).first()
            presence = (await connection.execute(presence_query)).first()
            rows = list(reversed((await connection.execute(newest)).all()))
            teasers = (await connection.execute(teaser_query)).all()
        return visitor, presence, rows, teasers


def _events_timeline(rows: Sequence[Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    previous_score = 0
    previous_rules: list[dict[str, Any]] = []
    for row in rows:
        payload: dict[str, Any] = row.payload or {}
        explanation: dict[str, Any] = row.explanation or {}
        scored: dict[str, Any] = explanation.get("score") or {}
        rules: list[dict[str, Any]] = scored.get("rules") or []
        entries.append(
            {
                "at": row.created_at,
                "order": 0,
                "kind": "event",
                "id": row.id,
                "type": row.type,
                "path": payload.get("path"),
                "secondsOnPage": payload.get("secondsOnPage"),
                "teaserId": payload.get("teaserId"),
                "value": payload.get("value"),
                "name": payload.get("name"),
                "score": row.score,
                "scoreChange": row.score - previous_score,
                "rules": rules,
                # Stored by intake since the score explained its change; older rows are
                # told by the difference from the step before.
                "added": scored["added"] if "added" in scored else _added(previous_rules, rules),
                "trigger": explanation.get("trigger"),
                "aiTriggered": bool(row.ai_triggered),
            }
        )
        previous_score, previous_rules = row.score, rules
    _add_time_on_page(entries)
    return entries


def _added(before: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules in `now` that were not in `before`, compared by (rule, detail), as
    intake's Score.since() tells them: a rule's contribution that took the place of an
    earlier one of the same rule (a higher tier) is worth the difference in points."""
    old, new = {_key(r) for r in before}, {_key(r) for r in now}
    lost: dict[object, list[dict[str, Any]]] = defaultdict(list)
    for rule in before:
        if _key(rule) not in new:
            lost[rule.get("rule")].append(rule)
    added = []
    for rule in now:
        if _key(rule) in old:
            continue
        if lost[rule.get("rule")]:
            replaced = lost[rule.get("rule")].pop(0)
            rule = rule | {"points": _points(rule) - _points(replaced)}
        added.append(rule)
    return added


def _key(rule: dict[str, Any]) -> tuple[object, object]:
    return rule.get("rule"), rule.get("detail")


def _points(rule: dict[str, Any]) -> int:
    points = rule.get("points")
    return points if isinstance(points, int) else 0


def _add_time_on_page(entries: list[dict[str, Any]]) -> None:
    """A page view's time on page: the longest stay the widget reported for it before the
    next view, else the gap until the next view, else unknown (still there, or left
    without a word)."""
    views = [i for i, entry in enumerate(entries) if entry["type"] == "page_view"]
    for position, index in enumerate(views):
        end = views[position + 1] if position + 1 < len(views) else len(entries)
        view = entries[index]
        stays = [
            e["secondsOnPage"]
            for e in entries[index + 1 : end]
            if e["type"] in ("time_on_page", "page_leave")
            and e["secondsOnPage"] is not None
            and e["path"] == view["path"]
        ]
        if stays:
            view["timeOnPage"] = max(stays)
        elif end < len(entries):
            view["timeOnPage"] = round((entries[end]["at"] - view["at"]) / 1000)
        else:
            view["timeOnPage"] = None


def _teaser_timeline(teaser: Any, fates: dict[str, Any], now: int) -> list[dict[str, Any]]:
    fate = fates.get(teaser.id)
    status = (
        "delivered"
        if teaser.consumed_at is not None
        else "pending"
        if now < teaser.expires_at
        else "expired"
    )
    sent = {
        "at": teaser.created_at,
        "order": 1,
        "kind": "teaser_sent",
        "id": teaser.id,
        "message": teaser.message,
        "priority": teaser.priority,
        "status": status,
        "expiresAt": iso_time(teaser.expires_at),
        "deliveredVia": teaser.delivered_via,
        "deliveredAt": _iso(teaser.consumed_at),
        "shown": fate is not None,
        "clicked": bool(fate and fate.clicked),
        "converted": bool(fate and fate.converted),
    }
    if teaser.consumed_at is None:
        return [sent]
    delivered = {
        "at": teaser.consumed_at,
        "order": 2,
        "kind": "teaser_delivered",
        "id": teaser.id,
        "via": teaser.delivered_via,
    }
    return [sent, delivered]


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "order"} | {
        "at": iso_time(entry["at"])
    }


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_time(epoch_ms)
