"""Every metric Teaser publishes (docs/metrics.md says what each one means), counted in
the worker and published to Prometheus by `flush()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector

from realtime.platform.metrics.counters import Counter, CounterBy, Gauge, Histogram
from realtime.platform.metrics.publishing import Publisher
from realtime.platform.metrics.workers import (
    ProcessGauges,
    forget_worker,
    multiprocess_directory,
    release_private_directory,
    sweep_dead_workers,
)

# Skipped: the pending index knew nothing was waiting, so the poll never reached the
# database. Empty: the store was asked and had nothing. Delivered: it answered teasers.
PollOutcome = Literal["skipped", "empty", "delivered"]
# A send's messages for a socket on another worker: sent there whole, given back to the
# store (no worker listened), or received here for a socket of this worker.
HandoffOutcome = Literal["sent", "given_back", "received"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LATENCY = "teaser_send_to_deliver_seconds"
LATENCY_HELP = "Time from a teaser being stored to it being handed to its session."
DELIVERED = "teaser_messages_delivered_total"
DELIVERED_HELP = "Teasers delivered: acked over a WebSocket, or handed to a poll."


class Metrics:
    """One worker's metrics: the counters the code increments, and their publication.
    One per process: in multiprocess mode two would write over each other's files."""

    def __init__(self) -> None:
        self.sent: CounterBy[str] = CounterBy(
            "teaser_messages_sent_total",
            "Teasers stored to be sent, by PUT and by triggers.",
            "site",
        )
        self.delivered_ws = Counter(DELIVERED, DELIVERED_HELP, transport="websocket")
        self.delivered_poll = Counter(DELIVERED, DELIVERED_HELP, transport="poll")
        self.expired = Counter("teaser_messages_expired_total", "Teasers that expired unseen.")
        self.polls: CounterBy[PollOutcome] = CounterBy(
            "teaser_polls_total", "Polls answered, by what they found.", "outcome"
        )
        self.handoffs: CounterBy[HandoffOutcome] = CounterBy(
            "teaser_handoffs_total",
            "Messages sent to a socket on another worker, by what became of them.",
            "outcome",
        )
        self.events = Counter("teaser_events_total", "Visitor events recorded.")
        self.auto_triggers = Counter(
            "teaser_auto_triggers_total", "Teasers the trigger engine sent by itself."
        )
        self.auto_held_out = Counter(
            "teaser_auto_held_out_total",
            "Automatic teasers not sent because their session is in the holdout.",
        )
        self.broker_failures = Counter(
            "teaser_broker_publish_failures_total", "Publishes the broker could not fan out."
        )
        self.latency_ws = Histogram(LATENCY, LATENCY_HELP, LATENCY_BUCKETS, transport="websocket")
        self.latency_poll = Histogram(LATENCY, LATENCY_HELP, LATENCY_BUCKETS, transport="poll")
        self._directory = multiprocess_directory()
        self._registry = CollectorRegistry()
        self._publisher = Publisher(self._registry)
        self._publish_all()
        self._process = self._process_metrics()

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._publisher.gauge(Gauge(name, help_text, read))

    def flush(self) -> None:
        """Publish what was counted since the last flush (each second, at a scrape, at stop)."""
        self._publisher.flush()
        if self._process is not None:
            self._process.flush()
        if self._directory is not None:
            sweep_dead_workers(self._directory)

    def render(self) -> str:
        """Prometheus' text format: every worker's metrics in multiprocess mode, else
        this one's; this worker's counts flushed first, so its own are never behind."""
        self.flush()
        if self._directory is None:
            return generate_latest(self._registry).decode()
        workers = CollectorRegistry()
        MultiProcessCollector(workers, path=self._directory)  # type: ignore[no-untyped-call]
        return generate_latest(workers).decode()

    def close(self) -> None:
        self.flush()
        if self._directory is not None:
            forget_worker(self._directory)
        release_private_directory()

    def _publish_all(self) -> None:
        publisher = self._publisher
        publisher.counter_by(self.sent)
        publisher.counter(self.delivered_ws)
        publisher.counter(self.delivered_poll)
        publisher.counter(self.expired)
        publisher.counter_by(self.polls)
        publisher.counter_by(self.handoffs)
        publisher.counter(self.events)
        publisher.counter(self.auto_triggers)
        publisher.counter(self.auto_held_out)
        publisher.counter(self.broker_failures)
        publisher.histogram(self.latency_ws)
        publisher.histogram(self.latency_poll)
        self.gauge("teaser_workers", "Workers alive, each publishing its metrics.", lambda: 1)

    def _process_metrics(self) -> ProcessGauges | None:
        if self._directory is None:
            ProcessCollector(registry=self._registry)  # read live at each scrape
            return None
        return ProcessGauges(self._registry)
