"""Custom events, without a server: declared in a rules file, counted per name in the
visitor's state, scored by an `event` rule, qualifying by `min_events`, picked by an
`event` template, and refused by the gate when the rules don't take them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from realtime.insight.conversions import attribute, goal_totals
from realtime.platform.errors import Forbidden, InvalidInput, RateLimited, RulesError
from realtime.targeting.custom_events import CustomEventGate, props_bytes
from realtime.targeting.evaluation import evaluate
from realtime.targeting.rules import default_rules, load_rules, parse_rules
from realtime.targeting.scoring import score
from realtime.targeting.templates import TeaserContext, TemplateGenerator
from realtime.targeting.triggers import Fatigue, qualifying_reasons
from realtime.targeting.visitors import MAX_CUSTOM_EVENTS, VisitorState
from tests.support import event_time, parse_event

RULES = default_rules()
NOON = 1_795_000_000_000
FRESH = Fatigue(last_teaser_at=None, manual_pending=False)
MINIMAL = '[[template]]\nid = "hi"\nsituation = "any"\ntext = "Hi"\n'
DECLARED = '[[event]]\nname = "added_to_cart"\n'


def custom(kind: str = "track", name: str = "added_to_cart", **fields: Any) -> Any:
    body = {"sessionId": "sess_1", "siteId": "shop", "type": kind, "name": name, **fields}
    return parse_event(body)


def did(times: int, name: str = "added_to_cart") -> VisitorState:
    state = VisitorState()
    for n in range(times):
        evaluate(state, custom(name=name, ts=event_time(n)), RULES, FRESH, NOON)
    return state


# ---- the rules file --------------------------------------------------------------------


def test_the_defaults_declare_the_common_events_and_a_30_minute_window() -> None:
    assert set(RULES.events) == {"added_to_cart", "signed_up", "purchase"}
    cart = RULES.events["added_to_cart"]
    assert (cart.max_props_bytes, cart.max_per_minute, cart.server_only) == (1024, 30, False)
    assert RULES.trigger.min_events == (("added_to_cart", 2),)
    assert RULES.attribution_window_minutes == 30


def test_a_file_declares_events_with_their_limits_and_its_window(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        '[[event]]\nname = "purchase"\ndescription = "An order"\nmax_props_bytes = 200\n'
        "max_per_minute = 2\nserver_only = true\n[attribution]\nwindow_minutes = 120\n" + MINIMAL
    )
    rules = load_rules(path)
    purchase = rules.events["purchase"]
    assert (purchase.description, purchase.max_props_bytes) == ("An order", 200)
    assert (purchase.max_per_minute, purchase.server_only) == (2, True)
    assert rules.attribution_window_minutes == 120
    assert parse_rules(MINIMAL, "none.toml").events == {}


BROKEN: list[tuple[str, str, str]] = [
    ("an event without a name", "[[event]]\nmax_per_minute = 3\n", "event[0]: needs name"),
    ("a name with a space", '[[event]]\nname = "added to cart"\n',
     "event[0].name: must be an event name"),
    ("the same name twice", DECLARED + DECLARED, "event id(s) used twice: added_to_cart"),
    ("props larger than any body", DECLARED + "max_props_bytes = 9000\n",
     "event[0].max_props_bytes: must be an integer <= 8192"),
    ("no rate at all", DECLARED + "max_per_minute = 0\n",
     "event[0].max_per_minute: must be an integer >= 1"),
    ("a score rule on an undeclared event", '[[score]]\nid = "x"\nkind = "event"\n'
     'event = "wishlist"\npoints = 5\n', "score[0].event: 'wishlist' is not declared"),
    ("a score rule's min_count of 0", DECLARED + '[[score]]\nid = "x"\nkind = "event"\n'
     'event = "added_to_cart"\nmin_count = 0\n', "score[0].min_count: must be an integer >= 1"),
    ("a trigger on an undeclared event", "[trigger]\nmin_events = { wishlist = 2 }\n",
     "trigger.min_events.wishlist: 'wishlist' is not declared"),
    ("an event template without its event", '[[template]]\nid = "e"\nsituation = "event"\n'
     'text = "x"\n', "template[1].event: situation event needs the event's name"),
    ("a window of no minutes", "[attribution]\nwindow_minutes = 0\n",
     "attribution.window_minutes: must be an integer >= 1"),
]  # fmt: skip


@pytest.mark.parametrize("text,message", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_broken_event_declaration_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(MINIMAL + text, "shop.toml")
    assert message in str(refused.value)


# ---- the visitor's state, and replays --------------------------------------------------


def test_each_name_is_counted_and_a_goal_is_a_conversion() -> None:
    state = did(3)
    evaluate(state, custom("goal", "purchase", value=49.9), RULES, FRESH, NOON)
    assert state.custom_events == {"added_to_cart": 3, "purchase": 1}
    assert state.conversions == 1


def test_two_events_of_one_name_in_one_millisecond_are_two_when_their_ids_differ() -> None:
    state = VisitorState()
    ts = event_time(7)
    for event_id in ("a1", "b2", "a1"):
        evaluate(state, custom(ts=ts, eventId=event_id), RULES, FRESH, NOON)
    assert state.custom_events == {"added_to_cart": 2}


def test_a_retry_with_the_same_event_id_is_counted_once_whatever_its_ts() -> None:
    state = VisitorState()
    first, retry = (
        evaluate(state, custom("goal", "purchase", eventId="order-1", ts=ts), RULES, FRESH, NOON)
        for ts in (event_time(1), event_time(2))
    )
    assert (first.duplicate, retry.duplicate) == (False, True)
    assert state.custom_events == {"purchase": 1} and state.conversions == 1


def test_the_names_kept_per_visitor_are_bounded() -> None:
    state = VisitorState()
    for n in range(MAX_CUSTOM_EVENTS + 10):
        state.did(f"event_{n}")
    state.did("event_0")
    assert len(state.custom_events) == MAX_CUSTOM_EVENTS
    assert state.custom_events["event_0"] == 2 and "event_70" not in state.custom_events


def test_the_counts_survive_the_state_s_round_trip_through_json() -> None:
    state = did(2)
    assert VisitorState.from_json(state.to_json()).custom_events == {"added_to_cart": 2}
    assert VisitorState.from_json({"page_views": 1}).custom_events == {}


# ---- score, trigger, template -----------------------------------------------------------


def test_the_event_rule_gives_its_points_from_min_count_on_and_explains_itself() -> None:
    once, twice, thrice = (score(did(n), RULES) for n in (1, 2, 3))
    assert once.total == 0
    assert twice.explain() == [
        {"rule": "cart_adds", "label": "Added to cart twice", "points": 20,
         "detail": "added_to_cart 2+ times"},
    ]  # fmt: skip
    assert thrice == twice  # the rule's bar, not the count: a third add changes nothing
    assert thrice.since(twice).explain() == {"added": [], "removed": []}


def test_an_event_rule_of_min_count_1_reads_as_the_name() -> None:
    rules = parse_rules(
        DECLARED + '[[score]]\nid = "cart"\nkind = "event"\nevent = "added_to_cart"\n'
        "points = 5\n" + MINIMAL,
        "shop.toml",
    )
    [contribution] = score(did(1), rules).contributions
    assert (contribution.points, contribution.detail) == (5, "added_to_cart")


def test_min_events_qualifies_the_session_saying_why() -> None:
    assert qualifying_reasons(did(1), score(did(1), RULES), RULES.trigger) == []
    state = did(2)
    assert qualifying_reasons(state, score(state, RULES), RULES.trigger) == [
        "2 × added_to_cart ≥ 2"
    ]


def test_the_second_add_to_cart_sends_the_cart_help_teaser() -> None:
    state = did(1)
    second = evaluate(state, custom(ts=event_time(99)), RULES, FRESH, NOON)
    assert second.decision is not None and second.decision.send
    context = TeaserContext(state, second.score, RULES)
    generated = asyncio.run(TemplateGenerator().generate(context))
    assert generated is not None and generated.template_id == "cart_help"


def test_a_goal_never_decides_a_send() -> None:
    state = did(2)
    reached = evaluate(state, custom("goal", "purchase", value=10), RULES, FRESH, NOON)
    assert reached.decision is None


# ---- the gate ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_undeclared_name_is_refused_naming_the_field_and_the_declared_ones() -> None:
    with pytest.raises(InvalidInput) as refused:
        CustomEventGate().admit(custom(name="wishlist"), RULES, from_server=False)
    assert refused.value.field == "name"
    assert "'wishlist' is not an event this site declares" in refused.value.detail
    assert "added_to_cart, purchase, signed_up" in refused.value.detail


def test_props_larger_than_declared_are_refused_naming_props() -> None:
    fits = custom(props={"note": "x" * 480, "sku": "y" * 480})
    big = custom(props={"a": "x" * 400, "b": "x" * 400, "c": "x" * 400})
    CustomEventGate().admit(fits, RULES, from_server=False)
    with pytest.raises(InvalidInput) as refused:
        CustomEventGate().admit(big, RULES, from_server=False)
    assert props_bytes(fits) <= 1024 < props_bytes(big)
    assert refused.value.field == "props"
    assert f"is {props_bytes(big)} bytes as JSON; added_to_cart takes at most 1024" in str(
        refused.value
    )


def test_a_server_only_event_is_refused_from_the_browser_and_taken_from_the_backend() -> None:
    rules = parse_rules('[[event]]\nname = "purchase"\nserver_only = true\n' + MINIMAL, "s")
    gate = CustomEventGate()
    with pytest.raises(Forbidden) as refused:
        gate.admit(custom("goal", "purchase"), rules, from_server=False)
    gate.admit(custom("goal", "purchase"), rules, from_server=True)
    assert refused.value.code == "server_only_event"


def test_each_session_and_name_has_its_own_rate_which_refills() -> None:
    rules = parse_rules('[[event]]\nname = "ping"\nmax_per_minute = 3\n' + MINIMAL, "s")
    clock = Clock()
    gate = CustomEventGate(clock)
    for _ in range(3):
        gate.admit(custom(name="ping"), rules, from_server=False)
    with pytest.raises(RateLimited) as limited:
        gate.admit(custom(name="ping"), rules, from_server=False)
    other = parse_event({"sessionId": "sess_2", "siteId": "shop", "type": "track", "name": "ping"})
    gate.admit(other, rules, from_server=False)
    clock.now += 20  # a minute holds 3: one more every 20 s
    gate.admit(custom(name="ping"), rules, from_server=False)
    assert "too many 'ping' events for this session" in limited.value.message
    assert 0 < limited.value.retry_after <= 20


def test_built_in_events_pass_the_gate_untouched() -> None:
    page_view = parse_event({"sessionId": "s", "siteId": "shop", "type": "page_view"})
    CustomEventGate().admit(page_view, parse_rules(MINIMAL, "s"), from_server=False)


# ---- attribution --------------------------------------------------------------------------

MINUTE = 60_000


def row(at_minutes: float, kind: str, **payload: Any) -> SimpleNamespace:
    return SimpleNamespace(
        session_id="s", type=kind, payload=payload, created_at=int(at_minutes * MINUTE)
    )


def test_a_goal_within_the_window_is_credited_to_the_teaser_shown_last() -> None:
    rows = [
        row(0, "teaser_shown", teaserId="t1"),
        row(5, "teaser_shown", teaserId="t2"),
        row(20, "track", name="added_to_cart"),
        row(34, "goal", name="purchase", value=49.9),
    ]
    first, last = attribute(rows, 30 * MINUTE)
    assert (first.converted, first.events) == (False, set())
    assert (last.converted, last.value) == (True, 49.9)
    assert last.events == {"added_to_cart", "purchase"}


def test_a_goal_past_the_window_is_counted_but_credited_to_no_teaser() -> None:
    rows = [row(0, "teaser_shown", teaserId="t1"), row(31, "goal", name="purchase", value=10)]
    [teaser] = attribute(rows, 30 * MINUTE)
    assert not teaser.converted and teaser.value == 0
    assert goal_totals(rows, [teaser]) == [
        {"key": "purchase", "count": 1, "value": 10.0, "attributed": 0, "attributedValue": 0.0}
    ]


def test_the_window_runs_from_the_teaser_s_last_showing() -> None:
    rows = [
        row(0, "teaser_shown", teaserId="t1"),
        row(40, "teaser_shown", teaserId="t1"),  # shown again, after a reload
        row(60, "goal", name="purchase"),
    ]
    [teaser] = attribute(rows, 30 * MINUTE)
    assert teaser.converted and teaser.at == 0


def test_a_conversion_event_keeps_its_rule_of_no_window() -> None:
    rows = [row(0, "teaser_shown", teaserId="t1"), row(600, "conversion", value=5)]
    [teaser] = attribute(rows, 30 * MINUTE)
    assert (teaser.converted, teaser.value) == (True, 5.0)
