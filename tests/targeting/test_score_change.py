"""What one event changes in the score (Score.since), with the default rules: the rules it
adds, a higher tier as one change worth the difference, and the sum that adds up."""

from __future__ import annotations

from typing import Any

from realtime.targeting.rules import default_rules
from realtime.targeting.scoring import Contribution, Score, score
from realtime.targeting.visitors import VisitorState
from tests.support import event_time, parse_event

RULES = default_rules()


def event(n: int, **fields: Any) -> dict[str, Any]:
    body = {"sessionId": "sess_1", "siteId": "shop", "type": "page_view", "path": "/"}
    return body | {"ts": event_time(n)} | fields


def changes(*bodies: dict[str, Any]) -> list[tuple[Score, Score]]:
    """(score before, score after) of each event in turn."""
    state, steps = VisitorState(), []
    for body in bodies:
        before = score(state, RULES)
        parsed = parse_event(body)
        if state.first_time(parsed.fingerprint):
            state.apply(parsed)
        steps.append((before, score(state, RULES)))
    return steps


def added(before: Score, after: Score) -> list[tuple[str, int, str]]:
    return [(c.rule, c.points, c.detail) for c in after.since(before).added]


def test_a_new_section_adds_its_rule_and_a_known_one_adds_nothing() -> None:
    (_, first), (b2, a2), (b3, a3) = changes(
        event(1, path="/about"), event(2, path="/chairs"), event(3, path="/chairs/oak")
    )

    assert first.total == 0
    assert added(b2, a2) == [("high_value_page", 30, "/chairs")]
    assert added(b3, a3) == [] and a3.since(b3).removed == ()


def test_one_event_may_add_several_rules_at_once() -> None:
    [(before, after)] = changes(
        event(1, path="/cart", utm={"utm_source": "facebook", "utm_campaign": "x"})
    )

    assert sorted(added(before, after)) == [
        ("facebook_traffic", 15, "utm_source=facebook"),
        ("high_value_page", 30, "/cart"),
        ("utm_campaign", 20, "utm_campaign=x"),
    ]


def test_a_higher_time_tier_is_one_change_worth_the_difference() -> None:
    steps = changes(
        event(1, type="time_on_page", secondsOnPage=40),
        event(2, type="page_leave", secondsOnPage=90),
    )

    assert [added(*step) for step in steps] == [
        [("time_on_page", 15, "30+ s on one page")],
        [("time_on_page", 10, "60+ s on one page")],
    ]
    assert all(after.since(before).removed == () for before, after in steps)


def test_the_score_before_plus_what_was_added_minus_what_was_removed_is_the_score() -> None:
    steps = changes(
        event(1, path="/about", utm={"utm_medium": "cpc"}),
        event(2, path="/about", type="time_on_page", secondsOnPage=35),
        event(3, path="/checkout", customerId="c-1"),
        event(4, path="/checkout", type="page_leave", secondsOnPage=61),
        event(4, path="/checkout", type="page_leave", secondsOnPage=61),  # a replay
        event(5, customerEmail="ann@shop.example"),
    )

    for before, after in steps:
        change = after.since(before)
        moved = sum(c.points for c in change.added) - sum(c.points for c in change.removed)
        assert before.total + moved == after.total
    assert [len(after.since(before).added) for before, after in steps] == [1, 1, 2, 1, 0, 1]


def test_a_contribution_gone_with_nothing_in_its_place_is_removed() -> None:
    page = Contribution("high_value_page", "High-value page", 30, "/chairs")
    tier = Contribution("time_on_page", "Time on a page", 15, "30+ s on one page")
    before, after = Score(45, (page, tier)), Score(15, (tier,))

    change = after.since(before)

    assert (change.added, change.removed) == ((), (page,))
    assert change.explain()["removed"] == [
        {"rule": "high_value_page", "label": "High-value page", "points": 30, "detail": "/chairs"}
    ]
