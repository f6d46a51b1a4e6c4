"""This worker's counters, kept cheap, and published through prometheus_client: true
across workers in its multiprocess mode."""

from realtime.platform.metrics.catalogue import LATENCY_BUCKETS, Metrics, PollOutcome
from realtime.platform.metrics.workers import prepare_worker_metrics

__all__ = ["LATENCY_BUCKETS", "Metrics", "PollOutcome", "prepare_worker_metrics"]
