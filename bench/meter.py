"""CPU of the server(s), the load client and everything else while one load runs, and
which side ran out of CPU first. The machine has 2 cores that both sides share.

Also the CPU seconds of every process on the server side (each server process, and the
Redis and PostgreSQL processes the setup uses), from which the report's CPU per delivered
message comes."""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.servers import Server

SATURATED_PCT = 85.0  # one asyncio process cannot use more than one core (100 %)
# A PostgreSQL backend's title: "postgres: 15/main: USER DATABASE HOST(PORT) STATE".
# The postmaster and the auxiliary processes (checkpointer, walwriter…) have no database.
BACKEND_TITLE = re.compile(r"^postgres: [^:]*: \S+ (\S+) (?:\S+\(\d+\)|\[local\])")
Snapshot = dict[tuple[int, float], tuple[str, float]]  # (pid, started) -> (part, CPU s)


def _databases(servers: Sequence[Server]) -> set[str]:
    urls = (server.spec.env.get("DATABASE_URL", "") for server in servers)
    return {url.rsplit("/", 1)[1] for url in urls if url.startswith("postgresql")}


def _uses_redis(servers: Sequence[Server]) -> bool:
    return any(
        server.spec.env.get(name) for server in servers for name in ("REDIS_URL", "BENCH_REDIS_URL")
    )


class ServerSideCpu:
    """CPU seconds of the server side of one setup, per part: `server` (every process of
    each server), `redis` (redis-server, when the setup uses Redis) and `postgres` (the
    postmaster, its auxiliary processes, and the backends of the setup's databases, when it
    uses PostgreSQL). Redis and PostgreSQL's auxiliary processes also serve whatever else
    runs on this machine meanwhile; other databases' backends are left out."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = servers
        self.databases = _databases(servers)
        self.redis = _uses_redis(servers)

    def _part(self, process: psutil.Process, server_pids: set[int]) -> str | None:
        if process.pid in server_pids:
            return "server"
        name = process.info["name"]
        if name == "redis-server":
            return "redis" if self.redis else None
        if name == "postgres" and self.databases:
            backend = BACKEND_TITLE.match(" ".join(process.info["cmdline"] or ()))
            return "postgres" if backend is None or backend[1] in self.databases else None
        return None

    def snapshot(self) -> Snapshot:
        server_pids = {p.pid for server in self.servers for p in server.processes()}
        taken: Snapshot = {}
        for process in psutil.process_iter(["name", "cmdline", "create_time", "cpu_times"]):
            part = self._part(process, server_pids)
            times = process.info["cpu_times"]
            if part is not None and times is not None:  # None: gone, or not ours to read
                taken[process.pid, process.info["create_time"]] = (part, times.user + times.system)
        return taken

    @staticmethod
    def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
        """CPU seconds per part between two snapshots. A process started in between counts
        whole; one that ended in between is lost (the bench ends none during a load)."""
        parts = {"server": 0.0, "redis": 0.0, "postgres": 0.0}
        for key, (part, seconds) in after.items():
            parts[part] += seconds - before.get(key, (part, 0.0))[1]
        return parts


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
        self.server_side = ServerSideCpu(servers)
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
        self._server_side = self.server_side.snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        server_side = ServerSideCpu.spent(self._server_side, self.server_side.snapshot())
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
            "server_side_cpu_s": round(sum(server_side.values()), 4),
            **{f"{part}_cpu_s": round(seconds, 4) for part, seconds in server_side.items()},
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
