"""Lift over the holdout, with its uncertainty: Wilson intervals for each rate and
Newcombe's hybrid score interval for their difference, checked against values worked by
hand, and nothing claimed below the minimum sample."""

from __future__ import annotations

import pytest

from realtime.insight.lift import MIN_CONVERSIONS, MIN_SESSIONS, Rate, lift, wilson


def test_the_wilson_interval_of_10_in_100_is_the_textbook_one() -> None:
    # centre (0.1 + z²/200) / (1 + z²/100) = 0.11480; half-width 0.05957
    interval = wilson(Rate(sessions=100, conversions=10))

    assert interval.low == pytest.approx(0.05523, abs=5e-5)
    assert interval.high == pytest.approx(0.17437, abs=5e-5)


def test_lift_and_its_interval_match_a_hand_worked_example() -> None:
    # Variant 30/200 (Wilson 0.10714 to 0.20605) over holdout 10/100 (0.05523 to 0.17437):
    # 0.05 - √(0.04286² + 0.07437²) = -0.0358, 0.05 + √(0.05605² + 0.04477²) = 0.1217.
    found = lift(Rate(200, 30), Rate(100, 10))

    assert found is not None
    assert found.absolute == pytest.approx(0.05)
    assert found.relative == pytest.approx(0.5)
    assert found.interval.low == pytest.approx(-0.0358, abs=5e-4)
    assert found.interval.high == pytest.approx(0.1217, abs=5e-4)


def test_the_interval_is_not_symmetric_near_a_boundary() -> None:
    found = lift(Rate(1000, 5), Rate(1000, 20))

    assert found is not None
    assert found.absolute == pytest.approx(-0.015)
    assert found.interval.high - found.absolute != pytest.approx(
        found.absolute - found.interval.low, abs=1e-4
    )
    assert found.interval.low < found.absolute < found.interval.high < 0


@pytest.mark.parametrize(
    "group,holdout",
    [
        (Rate(MIN_SESSIONS - 1, 50), Rate(500, 50)),
        (Rate(500, 50), Rate(MIN_SESSIONS - 1, 50)),
        (Rate(500, MIN_CONVERSIONS - 1), Rate(500, 50)),
        (Rate(500, 50), Rate(500, 0)),
    ],
    ids=["few variant sessions", "few holdout sessions", "few conversions", "no baseline"],
)
def test_below_the_minimum_sample_there_is_not_enough_data_yet(group: Rate, holdout: Rate) -> None:
    assert lift(group, holdout) is None


def test_an_empty_group_has_no_rate_and_the_widest_interval() -> None:
    empty = Rate(0, 0)

    assert empty.value is None
    assert (wilson(empty).low, wilson(empty).high) == (0.0, 1.0)
