"""A tiny Prometheus text-format registry; per worker, as Prometheus scrapes each one."""

from __future__ import annotations

import bisect
from collections.abc import Callable


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} counter",
            f"{self.name} {self.value:g}",
        ]


class Gauge:
    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help_text, read

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self.read():g}",
        ]


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help = name, help_text
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {running}')
        total = running + self.counts[-1]
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {total}')
        lines.append(f"{self.name}_sum {self.sum:g}")
        lines.append(f"{self.name}_count {total}")
        return lines


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.sent = Counter("teaser_messages_sent_total", "Teasers accepted by PUT.")
        self.delivered_ws = Counter(
            "teaser_messages_delivered_websocket_total", "Teasers acked over a WebSocket."
        )
        self.delivered_poll = Counter(
            "teaser_messages_delivered_poll_total", "Teasers handed to a poll."
        )
        self.expired = Counter("teaser_messages_expired_total", "Teasers that expired unseen.")
        self.polls = Counter("teaser_polls_total", "Polls answered.")
        self.events = Counter("teaser_events_total", "Visitor events recorded.")
        self.auto_triggers = Counter(
            "teaser_auto_triggers_total", "Automatic teasers sent by the trigger engine."
        )
        self.broker_failures = Counter(
            "teaser_broker_publish_failures_total", "Publishes the broker could not fan out."
        )
        self.latency = Histogram(
            "teaser_send_to_deliver_seconds",
            "Time from a teaser being stored to it being handed to its session.",
            LATENCY_BUCKETS,
        )
        self._gauges: list[Gauge] = []

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._gauges.append(Gauge(name, help_text, read))

    def render(self) -> str:
        parts: list[Counter | Gauge | Histogram] = [
            self.sent,
            self.delivered_ws,
            self.delivered_poll,
            self.expired,
            self.polls,
            self.events,
            self.auto_triggers,
            self.broker_failures,
            self.latency,
            *self._gauges,
        ]
        return "\n".join(line for part in parts for line in part.render()) + "\n"
