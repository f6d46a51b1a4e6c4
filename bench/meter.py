"""CPU of the server(s), the load client and everything else while one load runs, and
which side ran out of CPU first. The machine has 2 cores that both sides share."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.servers import Server

SATURATED_PCT = 85.0  # one asyncio process cannot use more than one core (100 %)


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _children_seconds() -> float:
    # wrk runs as our child and has exited by the time a meter stops: its CPU shows here.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


class Meter:
    def __init__(self, servers: Sequence[Server], client_pid: int | None = None) -> None:
        self.servers = servers
        self.client = psutil.Process(client_pid) if client_pid else None
        self.result: dict[str, Any] = {}

    def _client_seconds(self) -> float:
        own = sum(self.client.cpu_times()[:2]) if self.client else 0.0
        return own + _children_seconds()

    def _server_seconds(self) -> list[float]:
        return [s for server in self.servers for s in server.cpu_seconds()]

    def __enter__(self) -> Meter:
        self._wall = time.perf_counter()
        self._server = self._server_seconds()
        self._client = self._client_seconds()
        self._busy = _busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        workers = [
            100 * (after - before) / wall
            for before, after in zip(self._server, self._server_seconds(), strict=False)
        ]
        client = 100 * (self._client_seconds() - self._client) / wall
        busy = 100 * (_busy_seconds() - self._busy) / wall
        server = sum(workers)
        self.result = {
            "server_cpu_pct": round(server, 1),
            "server_worker_max_pct": round(max(workers, default=0.0), 1),
            "client_cpu_pct": round(client, 1),
            "other_cpu_pct": round(max(0.0, busy - server - client), 1),
            "bottleneck": bottleneck(max(workers, default=0.0), client, busy),
        }


def bottleneck(worker_max: float, client: float, busy: float) -> str:
    server_full, client_full = worker_max >= SATURATED_PCT, client >= SATURATED_PCT
    if server_full and client_full:
        return "both"
    if server_full:
        return "server"
    if client_full:
        return "client"
    if busy >= 2 * SATURATED_PCT:
        return "cores (shared)"
    return "neither (waits)"
