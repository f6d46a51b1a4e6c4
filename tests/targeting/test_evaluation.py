"""The targeting pipeline, shared by live intake and the dry run: state, score, decision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from realtime.targeting.evaluation import TRIGGERING_EVENTS, Evaluation, compose, evaluate
from realtime.targeting.events import CUSTOM_TYPES, EVENT_TYPES, VisitorEvent
from realtime.targeting.rules import default_rules
from realtime.targeting.templates import GeneratedTeaser, TemplateGenerator
from realtime.targeting.triggers import Fatigue
from realtime.targeting.visitors import VisitorState
from tests.support import event_time, parse_event

RULES = default_rules()
NOON = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp() * 1000)
FRESH = Fatigue(last_teaser_at=None, manual_pending=False)


def event(**fields: Any) -> VisitorEvent:
    body = {"sessionId": "sess_1", "siteId": "shop", "type": "page_view", "path": "/", **fields}
    if body["type"] in CUSTOM_TYPES:
        body.setdefault("name", "added_to_cart")
    return parse_event(body)


def test_only_signs_of_a_visitor_on_a_page_can_trigger() -> None:
    assert TRIGGERING_EVENTS == {"page_view", "time_on_page", "track"}
    assert TRIGGERING_EVENTS < EVENT_TYPES


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES - TRIGGERING_EVENTS))
def test_other_events_score_but_never_decide(kind: str) -> None:
    state = VisitorState(page_views=5)
    evaluation = evaluate(state, event(type=kind), RULES, FRESH, NOON)
    assert evaluation.decision is None
    assert not evaluation.duplicate


def test_a_qualifying_page_view_decides_to_send_and_composes_once() -> None:
    state = VisitorState()
    evaluation = evaluate(state, event(path="/checkout"), RULES, FRESH, NOON)
    assert evaluation.decision is not None and evaluation.decision.send
    generated = compose_now(evaluation)
    assert generated is not None and generated.text
    assert state.auto_sent_that_day == 1 and state.last_auto_at == NOON


def test_a_replayed_event_changes_nothing_and_decides_nothing() -> None:
    state = VisitorState()
    evaluate(state, event(path="/chairs", ts=event_time(1)), RULES, FRESH, NOON)
    before = state.to_json()
    replay = evaluate(state, event(path="/chairs", ts=event_time(1)), RULES, FRESH, NOON)
    assert replay.duplicate
    assert replay.decision is None
    assert state.to_json() == before


# A replay of the same occurrence (no ts: same type and page) that brings a fact the first
# report lacked, and the points that fact is worth in the shipped rules.
NEW_FACTS: list[Any] = [
    pytest.param({"customerId": "12345"}, 25, id="a customer id"),
    pytest.param({"customerEmail": "ann@example.com"}, 20, id="a customer e-mail"),
    pytest.param({"utm": {"utm_campaign": "spring"}}, 20, id="a UTM campaign"),
    pytest.param({"utm": {"utm_source": "facebook"}}, 15, id="a UTM source"),
    pytest.param({"timeZone": "Europe/Berlin"}, 0, id="a time zone"),
]


@pytest.mark.parametrize("fact,points", NEW_FACTS)
@pytest.mark.parametrize("ts", [None, event_time(1)], ids=["without ts", "same ts"])
def test_a_replay_that_brings_a_new_fact_is_learned_but_not_counted_again(
    fact: dict[str, Any], points: int, ts: str | None
) -> None:
    state = VisitorState()
    first = evaluate(state, event(path="/about", ts=ts), RULES, FRESH, NOON)
    again = evaluate(state, event(path="/about", ts=ts, **fact), RULES, FRESH, NOON)

    assert not again.duplicate
    assert again.score.total == first.score.total + points
    assert state.page_views == 1
    assert again.decision is not None  # a fact may make a visitor qualify: it decides


@pytest.mark.parametrize("fact,points", NEW_FACTS)
def test_a_replay_of_facts_already_known_is_a_duplicate(fact: dict[str, Any], points: int) -> None:
    state = VisitorState()
    evaluate(state, event(path="/about", **fact), RULES, FRESH, NOON)
    before = state.to_json()
    replay = evaluate(state, event(path="/about", **fact), RULES, FRESH, NOON)

    assert replay.duplicate and replay.decision is None
    assert state.to_json() == before


def test_a_longer_stay_reported_again_is_learned_and_a_shorter_one_is_not() -> None:
    state = VisitorState()
    stay = {"type": "time_on_page", "path": "/chairs"}
    evaluate(state, event(**stay, secondsOnPage=30), RULES, FRESH, NOON)
    longer = evaluate(state, event(**stay, secondsOnPage=90), RULES, FRESH, NOON)
    shorter = evaluate(state, event(**stay, secondsOnPage=90), RULES, FRESH, NOON)

    assert not longer.duplicate and state.longest_seconds_on_page == 90
    assert shorter.duplicate


def test_without_a_fatigue_budget_nothing_is_decided() -> None:
    evaluation = evaluate(VisitorState(), event(path="/checkout"), RULES, None, NOON)
    assert evaluation.decision is None
    assert compose_now(evaluation) is None


def test_a_blocked_decision_composes_nothing_and_counts_nothing() -> None:
    state = VisitorState()
    pending = Fatigue(last_teaser_at=None, manual_pending=True)
    evaluation = evaluate(state, event(path="/checkout"), RULES, pending, NOON)
    assert evaluation.decision is not None
    assert evaluation.decision.blocked_by == "manual_teaser_pending"
    assert compose_now(evaluation) is None
    assert state.auto_sent_that_day == 0


def compose_now(evaluation: Evaluation) -> GeneratedTeaser | None:
    return asyncio.run(compose(evaluation, RULES, TemplateGenerator(), NOON))
