"""When Teaser sends a teaser by itself, and why it did or did not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from realtime.platform.clock import iso_time
from realtime.targeting.rules import TriggerPolicy
from realtime.targeting.scoring import Score
from realtime.targeting.visitors import VisitorState


@dataclass(frozen=True)
class Fatigue:
    """The visitor's shared budget: the last teaser of any kind, and whether a manual one
    is still waiting (an automatic teaser never pushes one aside)."""

    last_teaser_at: int | None
    manual_pending: bool


@dataclass(frozen=True)
class Decision:
    qualified: bool
    reasons: tuple[str, ...]
    blocked_by: str | None
    cooldown_until: int | None
    sent_today: int
    daily_cap: int

    @property
    def send(self) -> bool:
        return self.qualified and self.blocked_by is None

    def explain(self) -> dict[str, object]:
        return {
            "qualified": self.qualified,
            "reasons": list(self.reasons),
            "send": self.send,
            "blockedBy": self.blocked_by,
            "cooldownUntil": None if self.cooldown_until is None else iso_time(self.cooldown_until),
            "dailyCap": {"used": self.sent_today, "limit": self.daily_cap},
        }


def utc_day(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d")


def qualifying_reasons(state: VisitorState, score: Score, policy: TriggerPolicy) -> list[str]:
    reasons = []
    if policy.min_score is not None and score.total >= policy.min_score:
        reasons.append(f"score {score.total} ≥ {policy.min_score}")
    if policy.min_page_views is not None and state.page_views >= policy.min_page_views:
        reasons.append(f"{state.page_views} page views ≥ {policy.min_page_views}")
    path = state.current_path or ""
    reasons += [
        f"on critical page {page}" for page in policy.critical_pages if path.startswith(page)
    ]
    if policy.known_customer and state.customer_id:
        reasons.append("known customer")
    for name, least in policy.min_events:
        done = state.custom_events.get(name, 0)
        if done >= least:
            reasons.append(f"{done} × {name} ≥ {least}")
    return reasons


def decide(
    state: VisitorState, score: Score, policy: TriggerPolicy, fatigue: Fatigue, now_ms: int
) -> Decision:
    reasons = qualifying_reasons(state, score, policy)
    cooldown_until = (
        None
        if fatigue.last_teaser_at is None
        else fatigue.last_teaser_at + policy.cooldown_seconds * 1000
    )
    sent_today = state.auto_sent_on(utc_day(now_ms))
    blocked_by = None
    if reasons:
        blocked_by = _first_blocker(state, policy, fatigue, now_ms, cooldown_until, sent_today)
    return Decision(
        qualified=bool(reasons),
        reasons=tuple(reasons),
        blocked_by=blocked_by,
        cooldown_until=cooldown_until if cooldown_until and cooldown_until > now_ms else None,
        sent_today=sent_today,
        daily_cap=policy.daily_cap,
    )


def _first_blocker(
    state: VisitorState,
    policy: TriggerPolicy,
    fatigue: Fatigue,
    now_ms: int,
    cooldown_until: int | None,
    sent_today: int,
) -> str | None:
    if fatigue.manual_pending:
        return "manual_teaser_pending"
    if cooldown_until is not None and now_ms < cooldown_until:
        return "cooldown"
    if sent_today >= policy.daily_cap:
        return "daily_cap"
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    if policy.business_hours and policy.time_zone:
        if not policy.business_hours.contains(now.astimezone(policy.time_zone).time()):
            return "outside_business_hours"
    visitor_zone = _zone(state.time_zone)
    if policy.quiet_hours and visitor_zone:
        if policy.quiet_hours.contains(now.astimezone(visitor_zone).time()):
            return "visitor_quiet_hours"
    return None


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
