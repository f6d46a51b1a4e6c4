"""Issue 21's two scenarios of many connections on one worker of Teaser as shipped, on
SQLite: held long-polls (longpoll), and tens of thousands of idle sockets (many)."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.bench import SEND_PATH, Bench, aggregate
from bench.loadgen import ClientFleet
from bench.scenarios import SETTLE_S, WARMUP_SOCKETS, fd_limit
from bench.servers import Server
from bench.specs import Setup, sqlite_url, teaser

HOLD_TIMEOUT_S = 30.0
FD_SPARE = 1000  # descriptors a process needs besides its sockets (as socket_counts allows)
# Sockets per client process: aiohttp takes about 19 KB each, and one process opens
# 10,000 in about as long as the server takes to accept them.
PER_CLIENT = 10_000
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _prefix() -> str:
    return f"bench-{uuid.uuid4().hex[:6]}"


# -- long-polls --------------------------------------------------------------------------------


def long_polls(bench: Bench) -> None:
    held = bench.plan.held_polls
    title = f"Long-polls: {held:,} held on one worker, sends to them one at a time and loaded"
    described = Setup(teaser(sqlite_url(bench.tmp)), "sqlite").describe()
    with bench.scenario("longpoll", title) as rows, bench.setup(rows, described) as row:
        runs = [_long_poll_run(bench) for _ in range(bench.plan.runs)]
        row["held_polls"] = held
        for part in ("held", "latency", "one_per_request"):
            row[part] = aggregate([run[part] for run in runs])


def _long_poll_run(bench: Bench) -> dict[str, Any]:
    """A fresh server (and database) per run, as for idle sockets."""
    plan = bench.plan
    with Server(teaser(sqlite_url(bench.tmp)), bench.tmp) as server:
        # Warm up first: imports, caches and the first allocations are not per-poll cost.
        _hold(bench, server, WARMUP_SOCKETS)
        bench.client("close")
        _await_held(bench, server, 0)
        time.sleep(SETTLE_S)
        baseline = server.rss()
        took = _hold(bench, server, plan.held_polls)
        time.sleep(SETTLE_S)
        rss = server.rss()
        bench.latency(server, 20)  # warm-up: first statements compiled, connections pooled
        latency = bench.latency(server, plan.lone_sends)
        loaded = bench.load(server, [server], batch=1, settle=False)
        stats = bench.client("poll_stats")
        bench.client("close")
    return {
        "held": {
            "kb_per_poll": round((rss - baseline) / plan.held_polls / 1024, 2),
            "rss_mb": round(rss / 2**20, 1),
            "holds_per_s": round(plan.held_polls / max(took, 1e-6)),
            # Answered without `wait` (the server would not hold them), and failed polls:
            # both should be 0.
            "plain_answers": stats["plain"],
            "poll_errors": stats["errors"],
        },
        "latency": latency,
        "one_per_request": loaded,
    }


def _hold(bench: Bench, server: Server, count: int) -> float:
    """Start `count` long-polls and wait until the server holds them all; the seconds it took."""
    began = time.perf_counter()
    url = server.http_base + SEND_PATH
    bench.client("hold", url=url, count=count, prefix=_prefix(), wait_ms=bench.plan.poll_wait_ms)
    _await_held(bench, server, count)
    return time.perf_counter() - began


def _await_held(bench: Bench, server: Server, count: int) -> None:
    """Until the server's own gauge (teaser_held_polls) says it holds `count` polls."""
    deadline = time.monotonic() + HOLD_TIMEOUT_S
    while (now := held_polls(server)) != count:
        if time.monotonic() > deadline:
            stats = bench.client("poll_stats")
            raise RuntimeError(f"the server holds {now} polls, not {count}; client: {stats}")
        time.sleep(0.1)


def held_polls(server: Server) -> int:
    with urllib.request.urlopen(f"{server.http_base}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("teaser_held_polls "):
                return int(float(line.split()[1]))
    raise RuntimeError("/metrics has no teaser_held_polls")


# -- many idle sockets -----------------------------------------------------------------------


def many_sockets(bench: Bench) -> None:
    counts, limit = bench.plan.many_counts, fd_limit()
    fits = [n for n in counts if n + FD_SPARE <= limit]
    # A count the descriptors can't hold is replaced by the most they can, in thousands, so
    # the ladder goes as far as this machine allows (and says so beside the skipped count).
    most = (limit - FD_SPARE) // 1_000 * 1_000
    if len(fits) < len(counts) and most > max(fits, default=0):
        fits.append(most)
    spec = teaser(sqlite_url(bench.tmp))
    described = Setup(spec, "sqlite").describe()
    title = f"Many idle sockets on one worker (up to {max(counts):,}), lone sends among them"
    with bench.scenario("many", title) as rows:
        if fits:
            with bench.setup(rows, described) as row, Server(spec, bench.tmp) as server:
                steps = _many_ladder(bench, server, fits)
                row.update(steps[0])
                rows += [{**described, **step} for step in steps[1:]]
        rows += [
            {**described, "sockets": n, "skipped": _no_room(n, limit)}
            for n in counts
            if n not in fits
        ]


def _many_ladder(bench: Bench, server: Server, counts: list[int]) -> list[dict[str, Any]]:
    """One server, the sockets added count by count (opening 50,000 three times would take
    minutes): RSS once per count, the lone sends `runs` times."""
    fleet = ClientFleet(_per_client())
    url = server.http_base + SEND_PATH
    steps: list[dict[str, Any]] = []
    try:
        bench.open_sockets("teaser", server, WARMUP_SOCKETS, _prefix() + "w")
        bench.client("close")
        time.sleep(SETTLE_S)
        baseline, opened, prefix = server.rss(), 0, _prefix()
        for count in counts:
            added, opened = count - opened, count
            opening, cpu_pct = _busy(
                server, partial(fleet.open, "teaser", server.ws_base, added, prefix)
            )
            if opening["failed"]:
                failed = f"{opening['failed']} of {added:,} sockets failed to open"
                steps.append({"sockets": count, "error": f"{failed}: {opening['first_failure']}"})
                break
            time.sleep(SETTLE_S)
            rss = server.rss()
            memory = {
                "kb_per_socket": round((rss - baseline) / count / 1024, 2),
                "rss_mb": round(rss / 2**20, 1),
                "opens_per_s": round(added / max(opening["seconds"], 1e-6)),
                "server_cpu_pct_opening": cpu_pct,
            }
            fleet.latency(url, 20)  # warm-up
            latency = [fleet.latency(url, bench.plan.lone_sends) for _ in range(bench.plan.runs)]
            steps.append(
                {
                    "sockets": count,
                    "client_processes": len(fleet.clients),
                    **aggregate([memory]),
                    "latency": aggregate(latency),
                }
            )
    finally:
        fleet.stop()
    return steps


def _busy(server: Server, work: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float]:
    """What `work` returned, and the server's CPU % of one core meanwhile (what bounds it)."""
    before, began = sum(server.cpu_seconds()), time.perf_counter()
    done = work()
    spent, took = sum(server.cpu_seconds()) - before, time.perf_counter() - began
    return done, round(spent * 100 / max(took, 1e-6), 1)


def _per_client() -> int:
    low, high = map(int, PORT_RANGE.read_text().split())
    return min(PER_CLIENT, high - low + 1 - FD_SPARE, fd_limit() - FD_SPARE)


def _no_room(count: int, limit: int) -> str:
    return (
        f"not measured: {count:,} sockets need {count + FD_SPARE:,} descriptors in the "
        f"server's one process, and the limit here is {limit:,} (ulimit -Hn; a container "
        "takes it from e.g. docker run --ulimit nofile=65536)"
    )


CROWD_SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "longpoll": long_polls,
    "many": many_sockets,
}
