"""This worker's counts as prometheus_client metrics, brought up to date by `flush()`: the
library's own calls (about 1.2 µs each in multiprocess mode, an mmap write under a lock)
are paid once per metric and flush, not once per teaser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from realtime.platform.metrics.counters import Counter, CounterBy, Gauge, Histogram

# Single-process mode would add a `_created` series per counter, which multiprocess mode
# has not: off, so /metrics has the same series however Teaser is served.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

M = TypeVar("M", bound=MetricWrapperBase)


class Flushed(Protocol):
    def flush(self) -> None: ...


class PublishedCounter:
    def __init__(self, local: Counter, published: prometheus_client.Counter) -> None:
        self.local, self.published = local, published
        self.flushed = 0.0

    def flush(self) -> None:
        if delta := self.local.value - self.flushed:
            self.published.inc(delta)
            self.flushed += delta


class PublishedCounterBy:
    def __init__(self, local: CounterBy[Any], published: prometheus_client.Counter) -> None:
        self.local, self.published = local, published
        self.flushed: dict[str, float] = {}

    def flush(self) -> None:
        for value, count in list(self.local.counts.items()):
            if delta := count - self.flushed.get(value, 0.0):
                self.published.labels(value).inc(delta)
                self.flushed[value] = count


class PublishedHistogram:
    def __init__(self, local: Histogram, published: prometheus_client.Histogram) -> None:
        self.local, self.published = local, published
        self.flushed_counts = [0] * len(local.counts)
        self.flushed_sum = 0.0

    def flush(self) -> None:
        # prometheus_client has no way to add many observations at once; its histogram
        # keeps one value per bucket, not cumulative, and a sum, which is what is added
        # to here (tests/platform/test_metrics.py fails if that changes).
        for i, count in enumerate(self.local.counts):
            if delta := count - self.flushed_counts[i]:
                self.published._buckets[i].inc(delta)
                self.flushed_counts[i] = count
        if delta_sum := self.local.sum - self.flushed_sum:
            self.published._sum.inc(delta_sum)
            self.flushed_sum = self.local.sum


class PublishedGauge:
    def __init__(self, local: Gauge, published: prometheus_client.Gauge) -> None:
        self.local, self.published = local, published

    def flush(self) -> None:
        self.published.set(self.local.read())


class Publisher:
    """The prometheus_client side of one worker's metrics. A family (one name) may be fed
    by several local counters, each with its own fixed labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._families: dict[str, MetricWrapperBase] = {}
        self._published: list[Flushed] = []

    def counter(self, local: Counter) -> None:
        family = self._once(
            local.name,
            lambda: prometheus_client.Counter(
                local.name, local.help, list(local.labels), registry=self.registry
            ),
        )
        published = family.labels(**local.labels) if local.labels else family
        self._published.append(PublishedCounter(local, published))

    def counter_by(self, local: CounterBy[Any]) -> None:
        family = self._once(
            local.name,
            lambda: prometheus_client.Counter(
                local.name, local.help, [local.label], registry=self.registry
            ),
        )
        self._published.append(PublishedCounterBy(local, family))

    def histogram(self, local: Histogram) -> None:
        family = self._once(
            local.name,
            lambda: prometheus_client.Histogram(
                local.name,
                local.help,
                list(local.labels),
                registry=self.registry,
                buckets=local.buckets,
            ),
        )
        published = family.labels(**local.labels) if local.labels else family
        self._published.append(PublishedHistogram(local, published))

    def gauge(self, local: Gauge) -> None:
        # livesum: a scrape shows the sum over the workers alive now; a dead worker's file
        # is swept (workers.sweep_dead_workers), so its last value does not linger.
        family = self._once(
            local.name,
            lambda: prometheus_client.Gauge(
                local.name, local.help, registry=self.registry, multiprocess_mode="livesum"
            ),
        )
        self._published.append(PublishedGauge(local, family))

    def flush(self) -> None:
        for published in self._published:
            published.flush()

    def _once(self, name: str, make: Callable[[], M]) -> M:
        if name not in self._families:
            self._families[name] = make()
        return cast(M, self._families[name])
