"""Did a teaser cause conversions? A group's conversion rate with its Wilson score interval,
and its lift over the holdout group: the difference of the two rates with Newcombe's
hybrid score interval (his method 10, built from the two Wilson intervals), which keeps
its coverage near 95 % with small groups and rates near 0, where the textbook
normal-approximation interval does not. Below a minimum sample nothing is claimed."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal
# Below these, a rate or a lift is "not enough data yet": no interval is shown at all.
MIN_SESSIONS = 100
MIN_CONVERSIONS = 5


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Rate:
    sessions: int
    conversions: int

    @property
    def value(self) -> float | None:
        return self.conversions / self.sessions if self.sessions else None

    @property
    def enough(self) -> bool:
        return self.sessions >= MIN_SESSIONS and self.conversions >= MIN_CONVERSIONS


@dataclass(frozen=True)
class Lift:
    absolute: float  # percentage points, as a fraction: 0.02 is +2 points
    relative: float | None  # over the holdout's rate; None when that rate is 0
    interval: Interval  # of `absolute`, 95 %


def wilson(rate: Rate, z: float = Z_95) -> Interval:
    """The Wilson score interval of a proportion."""
    n, p = rate.sessions, rate.value
    if not n or p is None:
        return Interval(0.0, 1.0)
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def lift(group: Rate, holdout: Rate, z: float = Z_95) -> Lift | None:
    """The group's rate minus the holdout's, with its interval; None ("not enough data
    yet") unless both have the minimum sample. Sessions that converted without a teaser
    count in the holdout, so a negative lift is possible and shown."""
    if not (group.enough and holdout.enough):
        return None
    p1, p2 = group.value, holdout.value
    assert p1 is not None and p2 is not None  # enough means sessions > 0
    one, two = wilson(group, z), wilson(holdout, z)
    difference = p1 - p2
    below = math.sqrt((p1 - one.low) ** 2 + (two.high - p2) ** 2)
    above = math.sqrt((one.high - p1) ** 2 + (p2 - two.low) ** 2)
    return Lift(
        absolute=difference,
        relative=difference / p2 if p2 else None,
        interval=Interval(difference - below, difference + above),
    )
