"""When an automatic teaser is sent: qualification, the shared fatigue budget, hours."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from realtime.targeting.rules import DailyWindow, TriggerPolicy, default_rules
from realtime.targeting.scoring import Score
from realtime.targeting.triggers import Fatigue, decide
from realtime.targeting.visitors import VisitorState

POLICY = default_rules().trigger
NOON = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
FRESH = Fatigue(last_teaser_at=None, manual_pending=False)


def visitor(**facts: object) -> VisitorState:
    state = VisitorState()
    for name, value in facts.items():
        setattr(state, name, value)
    return state


def points(total: int) -> Score:
    return Score(total=total, contributions=())


QUALIFY: list[tuple[str, VisitorState, int, bool]] = [
    ("score 49 alone does not qualify", visitor(page_views=1), 49, False),
    ("score 50 qualifies", visitor(page_views=1), 50, True),
    ("2 page views do not qualify", visitor(page_views=2), 0, False),
    ("3 page views qualify", visitor(page_views=3), 0, True),
    ("the checkout page qualifies", visitor(page_views=1, current_path="/checkout/2"), 0, True),
    ("the cart page qualifies", visitor(page_views=1, current_path="/cart"), 0, True),
    ("a chairs page alone does not", visitor(page_views=1, current_path="/chairs"), 0, False),
    ("a known customer qualifies", visitor(page_views=1, customer_id="12345"), 0, True),
]  # fmt: skip


@pytest.mark.parametrize(
    "state,total,qualified", [c[1:] for c in QUALIFY], ids=[c[0] for c in QUALIFY]
)
def test_a_session_qualifies_on_any_condition(
    state: VisitorState, total: int, qualified: bool
) -> None:
    decision = decide(state, points(total), POLICY, FRESH, NOON)
    assert decision.qualified is qualified
    assert decision.send is qualified


def test_no_automatic_teaser_within_five_minutes_of_any_teaser() -> None:
    state = visitor(page_views=3)
    recent = Fatigue(last_teaser_at=NOON - 4 * MINUTE, manual_pending=False)
    expired = Fatigue(last_teaser_at=NOON - 5 * MINUTE, manual_pending=False)

    blocked = decide(state, points(0), POLICY, recent, NOON)
    allowed = decide(state, points(0), POLICY, expired, NOON)

    assert (blocked.send, blocked.blocked_by) == (False, "cooldown")
    assert blocked.cooldown_until == NOON + MINUTE
    assert blocked.explain()["cooldownUntil"] == "2026-11-25T12:01:00.000Z"
    assert allowed.send is True


def test_the_daily_cap_counts_automatic_teasers_per_utc_day() -> None:
    state = visitor(page_views=3)
    for hour in range(3):
        state.count_auto_teaser(NOON - hour * 60 * MINUTE, "2026-11-25")

    today = decide(state, points(0), POLICY, FRESH, NOON)
    tomorrow = decide(state, points(0), POLICY, FRESH, NOON + 24 * 60 * MINUTE)

    assert (today.send, today.blocked_by) == (False, "daily_cap")
    assert today.explain()["dailyCap"] == {"used": 3, "limit": 3}
    assert tomorrow.send is True


def test_an_automatic_teaser_never_replaces_a_pending_manual_one() -> None:
    waiting = Fatigue(last_teaser_at=NOON - 10 * MINUTE, manual_pending=True)
    decision = decide(visitor(page_views=3), points(0), POLICY, waiting, NOON)
    assert (decision.send, decision.blocked_by) == (False, "manual_teaser_pending")


def test_business_hours_are_in_the_shops_time_zone() -> None:
    policy = TriggerPolicy(
        business_hours=DailyWindow.parse("09:00-18:00"), time_zone=ZoneInfo("Europe/Berlin")
    )
    evening_berlin = int(datetime(2026, 11, 25, 18, 30, tzinfo=UTC).timestamp() * 1000)

    open_ = decide(visitor(page_views=3), points(0), policy, FRESH, NOON)  # 13:00 in Berlin
    closed = decide(visitor(page_views=3), points(0), policy, FRESH, evening_berlin)

    assert open_.send is True
    assert (closed.send, closed.blocked_by) == (False, "outside_business_hours")


def test_quiet_hours_are_in_the_visitors_own_time_zone() -> None:
    policy = TriggerPolicy(quiet_hours=DailyWindow.parse("22:00-08:00"))
    new_york = visitor(page_views=3, time_zone="America/New_York")  # 07:00 there at noon UTC
    tokyo = visitor(page_views=3, time_zone="Asia/Tokyo")  # 21:00 there
    unknown = visitor(page_views=3)

    assert decide(new_york, points(0), policy, FRESH, NOON).blocked_by == "visitor_quiet_hours"
    assert decide(tokyo, points(0), policy, FRESH, NOON).send is True
    assert decide(unknown, points(0), policy, FRESH, NOON).send is True


def test_a_window_may_wrap_midnight() -> None:
    window = DailyWindow.parse("22:00-08:00")
    assert [
        window.contains(datetime.strptime(t, "%H:%M").time())
        for t in ("21:59", "22:00", "03:00", "07:59", "08:00")
    ] == [False, True, True, True, False]
