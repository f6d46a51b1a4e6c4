"""`teaser serve --workers 2` on PostgreSQL and Redis: whichever worker answers a scrape,
every counter only grows, the sends add up to what was sent, and a worker killed (and
restarted by uvicorn) takes no count with it."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    ServerProcess,
    drop_postgres_database,
    fresh_postgres_database,
    new_session_id,
    require_redis,
)

pytestmark = pytest.mark.timeout(240)

SENDS = 40
SENT = "teaser_messages_sent_total"
Key = tuple[str, frozenset[tuple[str, str]]]


class TwoWorkers(ServerProcess):
    def command(self) -> list[str]:
        port = str(self.port)
        return [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--workers",
            "2",
        ]

    @property
    def supervisor(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[int]:
        tasks = Path(f"/proc/{self.supervisor}/task")
        return [
            int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()
        ]

    def holder_of(self, client_port: int) -> int:
        """The worker holding the server end of a connection from this client port."""
        inode = _connection_inode(self.port, client_port)
        for pid in self.children():
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue  # closed meanwhile
        raise AssertionError(f"no worker holds the connection from port {client_port}")


def _connection_inode(server_port: int, client_port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if (
            int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            return inode
    raise AssertionError(f"no connection from port {client_port}")


@dataclass
class Answer:
    worker: int
    response: httpx.Response


def on_a_new_connection(server: TwoWorkers, method: str, path: str, **options: object) -> Answer:
    """One request on a connection of its own (so either worker may take it), and which
    worker took it, asked of the kernel while the connection is still open."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        response = client.request(method, path, **options)  # type: ignore[arg-type]
        client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        return Answer(server.holder_of(client_port), response)


@dataclass
class Scrape:
    worker: int
    counters: dict[Key, float]
    gauges: dict[Key, float]

    def total(self, name: str) -> float:
        return sum(v for (sample, _), v in self.counters.items() if sample == name)

    def gauge(self, name: str) -> set[float]:
        return {v for (sample, _), v in self.gauges.items() if sample == name}

    def pids(self) -> set[int]:
        return {
            int(dict(labels)["pid"])
            for (sample, labels) in self.gauges
            if sample == "process_start_time_seconds"
        }


def scrape(server: TwoWorkers) -> Scrape:
    answer = on_a_new_connection(server, "GET", "/metrics")
    assert answer.response.status_code == 200
    counters: dict[Key, float] = {}
    gauges: dict[Key, float] = {}
    for family in text_string_to_metric_families(answer.response.text):
        kept = counters if family.type in ("counter", "histogram") else gauges
        for sample in family.samples:
            kept[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(answer.worker, counters, gauges)


def send(server: TwoWorkers, n: int) -> int:
    body = {"sessionId": new_session_id(), "message": f"metrics {n}"}
    answer = on_a_new_connection(
        server, "PUT", "/api/teaser-messages", headers=DEMO_HEADERS, json=body
    )
    assert answer.response.status_code == 201, answer.response.text
    return answer.worker


def from_both_workers(server: TwoWorkers, at_most: int = 200) -> list[Scrape]:
    """Scrapes on new connections until each worker has answered at least one."""
    scrapes = [scrape(server)]
    while len({s.worker for s in scrapes}) < 2 and len(scrapes) < at_most:
        scrapes.append(scrape(server))
    return scrapes


def decreases(scrapes: list[Scrape]) -> list[str]:
    """Every counter sample that is lower than (or missing after) an earlier scrape's."""
    found = []
    for before, after in itertools.pairwise(scrapes):
        for key, value in before.counters.items():
            if after.counters.get(key, -1.0) < value:
                found.append(f"{key}: {value} then {after.counters.get(key)}")
    return found


def until(server: TwoWorkers, done: Callable[[Scrape], bool], within: float = 20.0) -> list[Scrape]:
    """Scrape until done(scrape) holds; every scrape made, in order."""
    scrapes = [scrape(server)]
    deadline = time.monotonic() + within
    while not done(scrapes[-1]) and time.monotonic() < deadline:
        time.sleep(0.2)
        scrapes.append(scrape(server))
    last = scrapes[-1]
    assert done(last), (
        f"not reached in {within} s; the last scrape, by worker {last.worker}: "
        f"{last.total(SENT)} sent, workers {last.gauge('teaser_workers')}, pids {last.pids()}"
    )
    return scrapes


# Where the workers' metrics files go: serve's own private directory, or one the operator
# names (with a previous run's files in it, which serve clears).
@pytest.fixture(scope="module", params=["private", "named"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoWorkers]:
    database = asyncio.run(fresh_postgres_database())
    folder = tmp_path_factory.mktemp("two-workers")
    env = {"DATABASE_URL": database, "REDIS_URL": asyncio.run(require_redis())}
    if request.param == "named":
        (folder / "metrics").mkdir()
        (folder / "metrics" / "counter_4242.db").write_bytes(b"a previous run's counts")
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder / "metrics")
    served = TwoWorkers(env, folder)
    if request.param == "private":
        served.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        served.start(timeout=60)
        until(served, lambda s: s.gauge("teaser_workers") == {2.0}, within=60)
        yield served
    finally:
        served.stop()
        asyncio.run(drop_postgres_database(database))


def test_counters_only_grow_and_sends_add_up_whichever_worker_answers(
    server: TwoWorkers,
) -> None:
    start = scrape(server)
    takers, scrapes = [], [start]
    while len(takers) < SENDS or len(set(takers)) < 2:
        takers.append(send(server, len(takers)))
        scrapes.append(scrape(server))
    sent = start.total(SENT) + len(takers)
    scrapes += until(server, lambda s: s.total(SENT) == sent)
    settled = from_both_workers(server)
    scrapes += settled

    assert len(set(takers)) == 2, "one worker took every send"
    assert len({s.worker for s in settled}) == 2, "one worker answered every scrape"
    assert decreases(scrapes) == []
    assert {s.total(SENT) for s in settled} == {sent}
    site = frozenset({("site", DEMO_SITE)})
    assert scrapes[-1].counters[(SENT, site)] == sent


def test_a_killed_worker_takes_no_count_with_it_and_its_replacement_joins(
    server: TwoWorkers,
) -> None:
    for n in range(10):
        send(server, n)
    before = until(server, lambda s: s.total(SENT) >= SENDS + 10)
    workers = before[-1].pids()
    assert len(workers) == 2
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    after = until(
        server,
        lambda s: (
            victim not in s.pids() and len(s.pids()) == 2 and s.gauge("teaser_workers") == {2.0}
        ),
        within=60,
    )
    settled = from_both_workers(server)
    after += settled

    assert decreases([before[-1], *after]) == []
    assert {s.total(SENT) for s in after} == {before[-1].total(SENT)}
    assert len({s.worker for s in settled}) == 2, "the replacement answered no scrape"
    assert victim not in {s.worker for s in settled}
