"""The metrics a worker counts reach Prometheus' text format through prometheus_client,
once each, and in multiprocess mode add up across workers, dead ones' counters included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime.platform import prepare_worker_metrics
from realtime.platform.metrics import LATENCY_BUCKETS, Metrics
from realtime.platform.metrics.workers import DIRECTORY_VARIABLE, release_private_directory
from tests.support import ROOT

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and labels; parsing it proves the format valid."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped[(name, frozenset(labels.items()))]


def test_every_metric_is_in_the_scrape_in_prometheus_text_format() -> None:
    families = {family.name for family in text_string_to_metric_families(Metrics().render())}

    assert {
        "teaser_messages_sent",
        "teaser_messages_delivered",
        "teaser_messages_expired",
        "teaser_polls",
        "teaser_events",
        "teaser_auto_triggers",
        "teaser_broker_publish_failures",
        "teaser_send_to_deliver_seconds",
        "teaser_workers",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    } <= families


def test_counts_reach_the_scrape_once_with_their_labels() -> None:
    metrics = Metrics()
    metrics.sent.inc("acme", 3)
    metrics.delivered_ws.inc()
    metrics.polls.inc("skipped")
    metrics.flush()
    metrics.sent.inc("acme")
    metrics.sent.inc("globex", 2)
    metrics.delivered_poll.inc(2)
    metrics.flush()
    scraped = samples(metrics.render())

    assert value(scraped, "teaser_messages_sent_total", site="acme") == 4
    assert value(scraped, "teaser_messages_sent_total", site="globex") == 2
    assert value(scraped, "teaser_messages_delivered_total", transport="websocket") == 1
    assert value(scraped, "teaser_messages_delivered_total", transport="poll") == 2
    assert value(scraped, "teaser_polls_total", outcome="skipped") == 1
    assert ("teaser_polls_total", frozenset({("outcome", "empty")})) not in scraped


def test_a_gauge_is_read_when_published() -> None:
    metrics = Metrics()
    sockets = [1, 2, 3]
    metrics.gauge("teaser_open_sockets", "Open session WebSockets.", lambda: len(sockets))
    before = value(samples(metrics.render()), "teaser_open_sockets")
    sockets.pop()

    assert (before, value(samples(metrics.render()), "teaser_open_sockets")) == (3, 2)


def test_a_flushed_histogram_is_what_observing_each_value_would_give() -> None:
    # The flush adds to prometheus_client's histogram buckets directly (it has no bulk
    # observe): if the library changes how it keeps them, this fails.
    latencies = [0.0004, 0.001, 0.003, 0.003, 0.2, 7.5, 45.0, 120.0]
    metrics = Metrics()
    for latency in latencies[:3]:
        metrics.latency_ws.observe(latency)
    metrics.flush()
    for latency in latencies[3:]:
        metrics.latency_ws.observe(latency)
    ours = samples(metrics.render())
    registry = prometheus_client.CollectorRegistry()
    library = prometheus_client.Histogram(
        "teaser_send_to_deliver_seconds",
        "",
        ["transport"],
        registry=registry,
        buckets=LATENCY_BUCKETS,
    )
    for latency in latencies:
        library.labels("websocket").observe(latency)
    theirs = samples(prometheus_client.generate_latest(registry).decode())

    websocket = {
        key: v
        for key, v in ours.items()
        if key[0].startswith("teaser_send_to_deliver") and ("transport", "websocket") in key[1]
    }
    assert websocket == pytest.approx(theirs)
    assert value(ours, "teaser_send_to_deliver_seconds_count", transport="websocket") == 8


# Multiprocess mode is chosen when prometheus_client is first imported, so each worker
# below is a process of its own, as uvicorn's are.
WORKER = """
import sys
from realtime.platform.metrics import Metrics
metrics = Metrics()
metrics.gauge("teaser_open_sockets", "Open session WebSockets.", lambda: {sockets})
metrics.sent.inc("acme", {sent})
metrics.flush()
print("flushed", flush=True)
sys.stdin.read()  # until the test lets it go
metrics.close()
"""
SCRAPER = """
from realtime.platform.metrics import Metrics
print(Metrics().render())
"""


class Worker:
    def __init__(self, directory: Path, sent: int, sockets: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER.format(sent=sent, sockets=sockets)],
            cwd=ROOT,
            env={**os.environ, DIRECTORY_VARIABLE: str(directory)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "flushed"

    @property
    def pid(self) -> str:
        return str(self.process.pid)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.communicate("", timeout=30)


def scrape(directory: Path) -> Samples:
    scraper = subprocess.run(
        [sys.executable, "-c", SCRAPER],
        cwd=ROOT,
        env={**os.environ, DIRECTORY_VARIABLE: str(directory)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return samples(scraper.stdout)


def pids_of(scraped: Samples, name: str) -> set[str]:
    return {dict(labels)["pid"] for sample, labels in scraped if sample == name}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Path, Worker, Worker]]:
    first, second = Worker(tmp_path, sent=3, sockets=2), Worker(tmp_path, sent=4, sockets=5)
    try:
        yield tmp_path, first, second
    finally:
        first.stop()
        second.stop()


def test_workers_sharing_a_directory_add_up_and_each_shows_its_own_process(
    workers: tuple[Path, Worker, Worker],
) -> None:
    directory, first, second = workers
    scraped = scrape(directory)

    assert value(scraped, "teaser_messages_sent_total", site="acme") == 7
    assert value(scraped, "teaser_open_sockets") == 7
    assert value(scraped, "teaser_workers") == 3  # the two, and the one scraping
    assert {first.pid, second.pid} < pids_of(scraped, "process_resident_memory_bytes")


def test_a_killed_workers_counts_stay_and_its_live_gauges_go(
    workers: tuple[Path, Worker, Worker],
) -> None:
    directory, first, second = workers
    first.kill()
    scraped = scrape(directory)

    assert value(scraped, "teaser_messages_sent_total", site="acme") == 7
    assert value(scraped, "teaser_open_sockets") == 5
    assert value(scraped, "teaser_workers") == 2
    assert first.pid not in pids_of(scraped, "process_cpu_seconds_total")
    assert second.pid in pids_of(scraped, "process_cpu_seconds_total")


def test_a_worker_that_stops_takes_its_live_gauges_and_leaves_its_counts(
    workers: tuple[Path, Worker, Worker],
) -> None:
    directory, _, second = workers
    second.stop()
    scraped = scrape(directory)

    assert value(scraped, "teaser_messages_sent_total", site="acme") == 7
    assert value(scraped, "teaser_open_sockets") == 2


def test_without_a_directory_a_supervisor_makes_a_private_one_and_removes_it_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DIRECTORY_VARIABLE, raising=False)
    prepare_worker_metrics()
    directory = Path(os.environ[DIRECTORY_VARIABLE])

    made = (directory.is_dir(), list(directory.iterdir()))
    release_private_directory()

    assert made == (True, [])
    assert not directory.exists()


def test_a_given_directory_is_emptied_of_a_previous_runs_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_4242.db").write_bytes(b"old counts")
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"old gauges")
    (tmp_path / "README").write_text("not ours")
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(tmp_path))
    prepare_worker_metrics()

    assert sorted(path.name for path in tmp_path.iterdir()) == ["README"]
    assert os.environ[DIRECTORY_VARIABLE] == str(tmp_path)


def published_names() -> set[str]:
    """Every series name a scrape can hold (histograms' _bucket, _count and _sum too)."""
    metrics = Metrics()
    metrics.sent.inc("acme")
    metrics.polls.inc("skipped")
    return {
        sample.name
        for family in text_string_to_metric_families(metrics.render())
        for sample in family.samples
    } | {"teaser_open_sockets"}


def test_docs_metrics_lists_every_published_metric() -> None:
    listed = set(re.findall(r"^\| `(\w+)`", (ROOT / "docs/metrics.md").read_text(), re.M))
    listed |= {"process_max_fds"}  # listed beside process_open_fds
    families = {family.name for family in text_string_to_metric_families(Metrics().render())} | {
        "teaser_open_sockets"
    }

    assert {name.removesuffix("_total") for name in listed} >= families


def test_the_grafana_dashboard_asks_only_for_published_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/teaser.json").read_text())
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\b((?:teaser|process)_\w+)\{", target["expr"])
    }

    assert asked
    assert asked <= published_names()
    assert {"${DS_PROMETHEUS}"} == {
        panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel
    }
