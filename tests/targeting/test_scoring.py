"""The interaction score with the default rules: every row of the marketers' table."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.targeting.rules import default_rules
from realtime.targeting.scoring import score
from realtime.targeting.visitors import VisitorState
from tests.support import event_time, parse_event

RULES = default_rules()

T1, T2 = event_time(1), event_time(2)


def event(**fields: Any) -> dict[str, Any]:
    return {"sessionId": "sess_1", "siteId": "shop", "type": "page_view", "path": "/", **fields}


def scored(*events: dict[str, Any]) -> tuple[int, list[str]]:
    state = VisitorState()
    for body in events:
        parsed = parse_event(body)
        if state.first_time(parsed.fingerprint):
            state.apply(parsed)
    result = score(state, RULES)
    return result.total, [c.rule for c in result.contributions]


SEED_UTM = {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "chairs_sale"}

CASES: list[tuple[str, list[dict[str, Any]], int]] = [
    ("a plain page scores nothing", [event(path="/about")], 0),
    ("a high-value page gives 30", [event(path="/chairs")], 30),
    ("prefix match: a product under /products", [event(path="/products/desk-7")], 30),
    ("the same section twice still gives 30", [event(path="/chairs", ts=T1),
                                               event(path="/chairs/office", ts=T2)], 30),
    ("two sections give 30 each", [event(path="/chairs", ts=T1), event(path="/cart", ts=T2)], 60),
    ("a UTM campaign gives 20", [event(utm={"utm_campaign": "spring"})], 20),
    ("facebook traffic gives 15", [event(utm={"utm_source": "facebook"})], 15),
    ("facebook matches in any case", [event(utm={"utm_source": "Facebook"})], 15),
    ("other sources give nothing", [event(utm={"utm_source": "google"})], 0),
    ("cpc traffic gives 10", [event(utm={"utm_medium": "cpc"})], 10),
    ("a known customer id gives 25", [event(customerId="12345")], 25),
    ("a customer email gives 20", [event(customerEmail="test@woodstock.com")], 20),
    ("29 s on a page gives nothing", [event(type="time_on_page", secondsOnPage=29)], 0),
    ("30 s on a page gives 15", [event(type="time_on_page", secondsOnPage=30)], 15),
    ("59 s on a page still gives 15", [event(type="time_on_page", secondsOnPage=59)], 15),
    ("a minute on a page gives 25", [event(type="time_on_page", secondsOnPage=60)], 25),
    ("30 s and 60 s marks do not add up: 25, not 40",
     [event(type="time_on_page", secondsOnPage=30, ts=T1),
      event(type="time_on_page", secondsOnPage=60, ts=T2)], 25),
    ("the seed's test page scores every rule once",
     [event(path="/chairs", utm=SEED_UTM, customerId="12345",
            customerEmail="test@woodstock.com")], 30 + 20 + 15 + 10 + 25 + 20),
    ("UTM facts from the landing page stay for later pages",
     [event(path="/", utm={"utm_campaign": "spring"}, ts=T1), event(path="/about", ts=T2)], 20),
    ("a replayed event changes nothing",
     [event(path="/chairs", ts=T1), event(path="/chairs", ts=T1),
      event(path="/chairs", ts=T1)], 30),
]  # fmt: skip


@pytest.mark.parametrize("events,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score_follows_the_table(events: list[dict[str, Any]], expected: int) -> None:
    total, _ = scored(*events)
    assert total == expected


def test_every_point_is_explained_by_the_rule_that_gave_it() -> None:
    state = VisitorState()
    state.apply(
        parse_event(
            event(
                path="/chairs", utm=SEED_UTM, customerId="12345", customerEmail="test@woodstock.com"
            )
        )
    )
    result = score(state, RULES)
    explained = {item["rule"]: item["points"] for item in result.explain()}

    assert explained == {
        "high_value_page": 30,
        "utm_campaign": 20,
        "facebook_traffic": 15,
        "cpc_traffic": 10,
        "known_customer": 25,
        "customer_email": 20,
    }
    assert sum(explained.values()) == result.total
    assert all("test@woodstock.com" not in str(item) for item in result.explain())


def test_replayed_page_views_do_not_count_as_more_views() -> None:
    state = VisitorState()
    for _ in range(5):
        parsed = parse_event(event(path="/chairs", ts=event_time(7)))
        if state.first_time(parsed.fingerprint):
            state.apply(parsed)
    assert state.page_views == 1
