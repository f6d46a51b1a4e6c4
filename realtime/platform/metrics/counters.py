"""This worker's counts, kept with a plain `+=`: the hot path never calls prometheus_client."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Generic, TypeVar

L = TypeVar("L", bound=str)


class Counter:
    """A count with fixed labels (or none): several may feed one published family, as
    deliveries by WebSocket and by poll feed `teaser_messages_delivered_total`."""

    def __init__(self, name: str, help_text: str, **labels: str) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class CounterBy(Generic[L]):
    """A count per value of one label whose values are few: sites (an operator makes
    each one), or outcomes the code names (a Literal, so mypy refuses a typo)."""

    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name, self.help, self.label = name, help_text, label
        self.counts: dict[L, float] = {}

    def inc(self, value: L, amount: float = 1.0) -> None:
        self.counts[value] = self.counts.get(value, 0.0) + amount

    @property
    def value(self) -> float:
        return sum(self.counts.values())


class Histogram:
    def __init__(
        self, name: str, help_text: str, buckets: tuple[float, ...], **labels: str
    ) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.buckets = buckets
        # Not cumulative: counts[i] holds the values in (buckets[i-1], buckets[i]], and the
        # last one those above every bound; prometheus_client keeps its buckets the same way.
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


class Gauge:
    """A value read when the metrics are published, not kept: open sockets, say."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help_text, read
