"""The run's shared state: its plan, temp dir, load client, and the results being filled."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import ClientProcess, have_wrk, wrk_polls
from bench.meter import Meter, load_average
from bench.servers import Server
from bench.stats import summary

BUSY_MACHINE = 0.5
# A load ends only once the server is idle again: one that just stopped sending may still
# be delivering, acking and collecting garbage for a second or two, and the next
# measurement (idle latency) must not see that tail.
SETTLE_SECONDS = 3.0
SEND_PATH = "/api/teaser-messages"
Row = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    quick: bool
    runs: int
    socket_counts: tuple[int, ...]
    latency_sends: int
    load_seconds: float
    poll_seconds: float
    variant_seconds: float
    sockets: int = 1000
    senders: int = 32
    bulk: int = 100
    poll_connections: int = 64
    # Issue 21: held long-polls (the longpoll scenario) and many idle sockets (many).
    held_polls: int = 1000
    poll_wait_ms: int = 25_000
    lone_sends: int = 200  # one at a time, among the held polls or the many sockets
    many_counts: tuple[int, ...] = (10_000, 50_000)


class Bench:
    def __init__(self, plan: Plan, tmp: Path) -> None:
        self.plan = plan
        self.tmp = tmp
        self.client = ClientProcess()
        self.scenarios: dict[str, dict[str, Any]] = {}

    @contextmanager
    def scenario(self, name: str, title: str) -> Iterator[list[dict[str, Any]]]:
        load1 = load_average()
        if load1 > BUSY_MACHINE:
            print(
                f"WARNING: 1-minute load average is {load1} before '{title}'; "
                "other work on this machine will show in the figures.",
                file=sys.stderr,
            )
        print(f"== {title}", file=sys.stderr)
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        try:
            yield rows
        finally:
            self.scenarios[name] = {
                "title": title,
                "load1_at_start": load1,
                "seconds": round(time.monotonic() - started, 1),
                "rows": rows,
            }

    @contextmanager
    def setup(self, rows: list[dict[str, Any]], described: dict[str, Any]) -> Iterator[Row]:
        """One setup's row. A failure is recorded in it and the scenario goes on."""
        row: Row = dict(described)
        try:
            yield row
        except Exception as exc:
            print(f"  FAILED {described}: {exc}", file=sys.stderr)
            row = {**described, "error": str(exc)[-800:]}
            with suppress(Exception):
                self.client("close")
        rows.append(row)

    def open_sockets(self, peer: str, server: Server, count: int, prefix: str) -> dict[str, Any]:
        opened = self.client("open", wire=peer, base=server.ws_base, count=count, prefix=prefix)
        if opened["failed"]:
            raise RuntimeError(
                f"{opened['failed']} of {count} sockets failed to open on {peer}: "
                f"{opened['first_failure']}"
            )
        return opened

    def latency(self, sender: Server, count: int | None = None) -> dict[str, Any]:
        count = count or self.plan.latency_sends
        return self.client("latency", url=sender.http_base + SEND_PATH, count=count)

    def load(
        self,
        sender: Server,
        servers: Sequence[Server],
        batch: int,
        seconds: float | None = None,
        settle: bool = True,
    ) -> dict[str, Any]:
        """One load, metered. `settle=False` where nothing is measured on these servers after
        it (the setup's last load): the wait for the server to be idle again is then wasted."""
        with Meter(servers, self.client.pid) as meter:
            result = self.client(
                "load",
                url=sender.http_base + SEND_PATH,
                senders=self.plan.senders,
                seconds=seconds or self.plan.load_seconds,
                batch=batch,
            )
        if settle:
            time.sleep(SETTLE_SECONDS)
        # The meter ran from the first send until the last message arrived (or the client
        # gave up on the rest): the CPU of delivering every message counted in `received`.
        received, spent = result["received"], meter.result["server_side_cpu_s"]
        per_message = round(spent * 1e6 / received, 1) if received else None
        return {**result, **meter.result, "cpu_us_per_msg": per_message}

    def polls(self, server: Server, seconds: float | None = None) -> dict[str, Any]:
        seconds = seconds or self.plan.poll_seconds
        url = server.http_base + SEND_PATH
        with Meter([server], None if have_wrk() else self.client.pid) as meter:
            if have_wrk():
                result = {"tool": "wrk", **wrk_polls(url, seconds, self.plan.poll_connections)}
            else:
                result = {
                    "tool": "python",
                    **self.client(
                        "polls", url=url, concurrency=self.plan.poll_connections, seconds=seconds
                    ),
                }
        # CPU per answered poll: steadier than requests/s while others load the machine.
        answered = (result["requests_per_s"] or 0) * seconds
        spent = meter.result["server_side_cpu_s"]
        per_request = round(spent * 1e6 / answered, 1) if answered else None
        return {**result, **meter.result, "cpu_us_per_request": per_request}

    def close(self) -> None:
        self.client.stop()


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Numbers become median/min/max over the runs; labels (the bottleneck) the most common."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for run in runs for k in run):
        values = [run.get(key) for run in runs]
        if all(v is None or isinstance(v, int | float) for v in values):
            merged[key] = summary(values)
        else:
            merged[key] = Counter(map(str, values)).most_common(1)[0][0]
    return merged
