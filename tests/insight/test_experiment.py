"""The experiment report: sessions by the group of their first automatic decision, who
converted after entering it, rates with intervals and lift over the holdout — by hand on
rows, then from real events through /api/dashboard/conversions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from realtime.insight.experiment import Arm, Entry, converted, enter, report
from realtime.targeting.experiments import held_out, variant_for
from tests.conftest import ServerFactory
from tests.insight.test_dashboard_api import post_event, sign_in
from tests.support import rules_dir
from tests.targeting.test_holdout import CART, RULES, SITE

WINDOW_MS = 30 * 60_000


class Decision(NamedTuple):
    session_id: str
    created_at: int
    held_out: bool
    explanation: dict[str, Any]


class Row(NamedTuple):
    session_id: str
    type: str
    created_at: int


def decided(session: str, at: int, variant: str | None, *, out: bool = False) -> Decision:
    return Decision(session, at, out, {"trigger": {"template": "cart", "variant": variant}})


def test_a_session_belongs_to_the_group_of_its_first_decision() -> None:
    decisions = [
        decided("s1", 10, "original"),
        decided("s2", 11, "bold", out=True),
        decided("s1", 20, "original"),  # decided again later: still where it entered
    ]

    entries = enter(decisions, [("s3", 30), ("s1", 40), ("s3", 35)])

    assert entries == {
        "s1": Entry(10, Arm.VARIANT, "cart", "original"),
        "s2": Entry(11, Arm.HOLDOUT, "cart", "bold"),
        "s3": Entry(30, Arm.MANUAL),  # no automatic decision: the manual teaser it was shown
    }
    assert [entries[s].key for s in ("s1", "s2", "s3")] == ["cart/original", "holdout", "manual"]


def test_a_session_converts_by_a_conversion_after_it_entered_or_a_goal_within_the_window() -> None:
    entries = {s: Entry(1_000, Arm.VARIANT, "cart", None) for s in ("a", "b", "c", "d", "e")}
    rows = [
        Row("a", "conversion", 999),  # before it entered: not the teaser's doing
        Row("b", "conversion", 1_000 + 10 * WINDOW_MS),  # a conversion counts whenever
        Row("c", "goal", 1_000 + WINDOW_MS),  # a goal within the window
        Row("d", "goal", 1_001 + WINDOW_MS),  # ...and not a millisecond after
        Row("e", "track", 2_000),  # a custom event is no conversion
        Row("z", "conversion", 2_000),  # a session in no group
    ]

    assert converted(entries, rows, WINDOW_MS) == {"b", "c"}


def tally(groups: dict[str, tuple[int, int]]) -> tuple[dict[str, Entry], set[str]]:
    """Sessions and conversions per group key ('holdout', 'manual' or a wording)."""
    entries: dict[str, Entry] = {}
    conversions: set[str] = set()
    for key, (sessions, converting) in groups.items():
        arm = Arm(key) if key in ("holdout", "manual") else Arm.VARIANT
        for number in range(sessions):
            session = f"{key}-{number}"
            variant = None if arm is not Arm.VARIANT else key
            entries[session] = Entry(0, arm, None if variant is None else "cart", variant)
            if number < converting:
                conversions.add(session)
    return entries, conversions


def test_rates_intervals_and_lift_match_a_hand_worked_example() -> None:
    # 10/100 held out, 30/200 sent "bold", 4/50 sent "plain", 3/40 manual.
    entries, conversions = tally(
        {"holdout": (100, 10), "bold": (200, 30), "plain": (50, 4), "manual": (40, 3)}
    )

    found = report(entries, conversions, 30)
    variants = {group["variant"]: group for group in found["variants"]}

    assert found["holdout"] | {"lift": None} == found["holdout"]
    assert found["holdout"]["conversionRate"] == 0.1
    # Wilson, z = 1.96: 0.1 at n = 100 -> (0.0552, 0.1744); 0.15 at n = 200 -> (0.1071, 0.2061)
    assert found["holdout"]["interval"] == {"low": 0.0552, "high": 0.1744}
    assert variants["bold"]["interval"] == {"low": 0.1071, "high": 0.2061}
    # Newcombe's hybrid score: 0.05 - sqrt(0.0429² + 0.0744²) ... 0.05 + sqrt(0.0561² + 0.0448²)
    assert variants["bold"]["lift"] == {
        "absolute": 0.05,
        "relative": 0.5,
        "interval": {"low": -0.0358, "high": 0.1217},
    }
    # 50 sessions: not enough data yet, so no interval and no lift, but the counts.
    assert (
        variants["plain"] | {"sessions": 50, "converted": 4, "conversionRate": 0.08}
        == (variants["plain"])
    )
    assert variants["plain"]["enoughData"] is False
    assert variants["plain"]["interval"] is None and variants["plain"]["lift"] is None
    # All automatic teasers: 34/250.
    assert (found["auto"]["sessions"], found["auto"]["converted"]) == (250, 34)
    assert found["auto"]["lift"]["absolute"] == 0.036
    # An operator's choice is no random sample: a rate, never a lift.
    assert (found["manual"]["sessions"], found["manual"]["lift"]) == (40, None)
    assert [group["key"] for group in found["variants"]] == ["cart/bold", "cart/plain"]


def test_without_a_holdout_no_lift_is_claimed() -> None:
    entries, conversions = tally({"bold": (500, 50)})

    found = report(entries, conversions, 30)

    assert found["holdout"]["sessions"] == 0 and found["holdout"]["conversionRate"] is None
    assert found["variants"][0]["interval"] is not None
    assert found["variants"][0]["lift"] is None and found["auto"]["lift"] is None


@pytest.fixture
async def rules_server(start_server: ServerFactory, database_url: str, tmp_path: Path) -> Any:
    directory = rules_dir(tmp_path, SITE, RULES.replace("holdout = 0.3", "holdout = 0.5"))
    return await start_server(
        database_url=database_url, rules_dir=str(directory), events_per_ip_per_second=0
    )


async def test_the_conversions_api_reports_the_experiment_from_real_events(
    rules_server: Any,
) -> None:
    """240 sessions qualify; every third converts. What the API counts per group is what
    the assignment and those conversions make, by hand."""
    sessions = [f"sess_exp_{n:04d}" for n in range(240)]
    operator = await sign_in(rules_server)
    try:
        for session in sessions:
            await post_event(operator, session, path="/cart")
        for session in sessions[::3]:
            await post_event(operator, session, type="conversion", path="/thanks", value=10)
        answer = await operator.get("/api/dashboard/conversions", params={"period": "24h"})
    finally:
        await operator.aclose()
    assert answer.status_code == 200, answer.text
    found = answer.json()["experiment"]

    def key(session: str) -> str:
        if held_out(SITE, session, 0.5):
            return "holdout"
        variant = variant_for(SITE, session, CART)
        assert variant is not None
        return f"cart/{variant.name}"

    expected = Counter(key(s) for s in sessions)
    hits = Counter(key(s) for s in sessions[::3])
    groups = [found["holdout"], *found["variants"]]
    assert {g["key"]: (g["sessions"], g["converted"]) for g in groups} == {
        k: (n, hits[k]) for k, n in expected.items()
    }
    assert found["auto"]["sessions"] == 240 - expected["holdout"]
    assert found["holdout"]["enoughData"] is (expected["holdout"] >= 100)
    assert found["manual"]["sessions"] == 0
    assert (found["unit"], found["rateInterval"], found["liftInterval"]) == (
        "session",
        "wilson",
        "newcombe_hybrid_score",
    )
