"""The five scenarios of issue 6, plus uvicorn option variants for Teaser. Each starts the
servers it needs, measures `plan.runs` times, stops them, and appends one row per setup."""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from bench.bench import Bench, aggregate
from bench.servers import Server, ServerSpec
from bench.services import fresh_postgres
from bench.specs import (
    Setup,
    socketio,
    socketio_emit,
    sqlite_url,
    starlette,
    teaser,
    teaser_tuned,
    variant,
)

SETTLE_S = 1.5  # let a server finish its per-socket work before its RSS is read
WARMUP_SOCKETS = 100
WS_IMPLS = ("websockets-sansio", "websockets", "wsproto")


def _prefix() -> str:
    return f"bench-{uuid.uuid4().hex[:6]}"


def fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def socket_counts(bench: Bench) -> tuple[int, ...]:
    # Server and client each hold one descriptor per socket, plus some for everything else.
    limit = fd_limit()
    return tuple(n for n in bench.plan.socket_counts if n + 1000 <= limit)


# -- 1. idle socket cost ----------------------------------------------------------------------


def idle_sockets(bench: Bench) -> None:
    impls = WS_IMPLS if not bench.plan.quick else WS_IMPLS[:1]
    # Teaser as `teaser serve` starts it, then tuned: uvicorn directly, on each --ws.
    setups = [Setup(teaser(sqlite_url(bench.tmp)), "sqlite")]
    setups += [Setup(teaser_tuned(sqlite_url(bench.tmp), ws=ws), "sqlite") for ws in impls]
    # The peers on uvicorn's default and on wsproto, the leanest per socket in the trial run.
    setups += [Setup(socketio(ws=ws), "memory") for ws in impls[:1]]
    setups += [Setup(starlette(ws=ws), "memory") for ws in impls if ws != "websockets"]
    counts = socket_counts(bench)
    with bench.scenario("idle_sockets", "1. Idle socket cost (server RSS per open socket)") as rows:
        for setup in setups:
            with bench.setup(rows, setup.describe()) as row:
                runs = [_idle_run(bench, setup.spec, counts) for _ in range(bench.plan.runs)]
                row["sockets"] = counts[0]
                row.update(aggregate([run[counts[0]] for run in runs]))
                for count in counts[1:]:
                    per_run = [run[count] for run in runs]
                    rows.append({**setup.describe(), "sockets": count, **aggregate(per_run)})


def _idle_run(bench: Bench, spec: ServerSpec, counts: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    figures: dict[int, dict[str, Any]] = {}
    with Server(spec, bench.tmp) as server:
        prefix = _prefix()
        # Warm up first: imports, caches and the first allocations are not per-socket cost.
        bench.open_sockets(spec.peer, server, WARMUP_SOCKETS, prefix + "w")
        bench.client("close")
        time.sleep(SETTLE_S)
        baseline, opened = server.rss(), 0
        for count in counts:
            added, opened = count - opened, count
            took = bench.open_sockets(spec.peer, server, added, prefix)["seconds"]
            time.sleep(SETTLE_S)
            rss = server.rss()
            figures[count] = {
                "kb_per_socket": round((rss - baseline) / count / 1024, 2),
                "rss_mb": round(rss / 2**20, 1),
                "opens_per_s": round(added / max(took, 1e-6)),
            }
        bench.client("close")
    return figures


# -- 2 + 3. targeted and bulk sends, one worker ------------------------------------------------


def targeted(bench: Bench) -> None:
    setups = [
        Setup(teaser(sqlite_url(bench.tmp)), "sqlite"),
        Setup(teaser_tuned(sqlite_url(bench.tmp)), "sqlite"),
        Setup(socketio(), "memory"),
        Setup(socketio_emit(), "memory"),
        Setup(starlette(), "memory"),
    ]
    title = f"2+3. Targeted and bulk sends to {bench.plan.sockets} open sockets"
    with bench.scenario("targeted", title) as rows:
        for setup in setups:
            with bench.setup(rows, setup.describe()) as row, Server(setup.spec, bench.tmp) as s:
                row.update(_sends(bench, s, s, [s], True))


def _sends(
    bench: Bench, sender: Server, holder: Server, servers: list[Server], bulk: bool
) -> dict[str, Any]:
    plan = bench.plan
    bench.open_sockets(holder.spec.peer, holder, plan.sockets, _prefix())
    bench.latency(sender, 20)  # warm-up: first statements compiled, connections pooled
    latency, one, many = [], [], []
    for run in range(plan.runs):
        last = run == plan.runs - 1
        latency.append(bench.latency(sender))
        one.append(bench.load(sender, servers, batch=1, settle=bulk or not last))
        if bulk:
            many.append(bench.load(sender, servers, batch=plan.bulk, settle=not last))
    bench.client("close")
    result = {"latency": aggregate(latency), "one_per_request": aggregate(one)}
    if bulk:
        result["bulk"] = aggregate(many)
    return result


# -- 4. idle polls ------------------------------------------------------------------------------


def topology(workers: int) -> str:
    return "1 worker" if workers == 1 else f"{workers} workers"


def idle_polls(bench: Bench) -> None:
    def on_sqlite(stack: ExitStack, workers: int) -> ServerSpec:
        return teaser(sqlite_url(bench.tmp), redis=workers > 1, workers=workers)

    def tuned_on_sqlite(stack: ExitStack, workers: int) -> ServerSpec:
        return teaser_tuned(sqlite_url(bench.tmp), redis=workers > 1, workers=workers)

    def on_postgres(stack: ExitStack, workers: int) -> ServerSpec:
        return teaser(stack.enter_context(fresh_postgres()), redis=True, workers=workers)

    def bare(stack: ExitStack, workers: int) -> ServerSpec:
        return starlette(workers=workers)

    builds = [("sqlite", on_sqlite), ("sqlite", tuned_on_sqlite), ("memory", bare)]
    if not bench.plan.quick:
        builds.append(("postgres+redis", on_postgres))
    worker_counts = (1,) if bench.plan.quick else (1, 2)
    with bench.scenario("idle_polls", "4. Idle polls (POST, nothing pending)") as rows:
        for storage, build in builds:
            for workers in worker_counts:
                with ExitStack() as stack:
                    spec = build(stack, workers)
                    setup = Setup(spec, storage, topology(workers))
                    row = stack.enter_context(bench.setup(rows, setup.describe()))
                    server = stack.enter_context(Server(spec, bench.tmp))
                    bench.polls(server, 1)  # warm-up
                    row["polls"] = aggregate([bench.polls(server) for _ in range(bench.plan.runs)])


# -- 5. scale-out on PostgreSQL + Redis ---------------------------------------------------------


@contextmanager
def _two(specs: tuple[ServerSpec, ServerSpec], bench: Bench) -> Iterator[tuple[Server, Server]]:
    with Server(specs[0], bench.tmp) as first, Server(specs[1], bench.tmp) as second:
        yield first, second


def scale_out(bench: Bench) -> None:
    title = "5. Scale-out: PostgreSQL + Redis (A→B: sender on worker A, sockets on worker B)"
    # One worker is the local figure the A→B rows are compared with (CPU per message);
    # --workers 2, and bulk sends (the backlog a crossing builds), only in a full run.
    worker_counts = (1,) if bench.plan.quick else (1, 2)
    bulk = not bench.plan.quick
    with bench.scenario("scale_out", title) as rows:
        for workers in worker_counts:
            with fresh_postgres() as url:
                spec = teaser(url, redis=True, workers=workers)
                setup = Setup(spec, "postgres+redis", topology(workers))
                with bench.setup(rows, setup.describe()) as row, Server(spec, bench.tmp) as s:
                    row.update(_sends(bench, s, s, [s], bulk))
        with fresh_postgres() as url:
            spec = teaser(url, redis=True)
            described = Setup(spec, "postgres+redis", "A→B").describe()
            with bench.setup(rows, described) as row, _two((spec, spec), bench) as (a, b):
                row.update(_sends(bench, a, b, [a, b], bulk))
        # python-socketio on AsyncRedisManager: an emit is delivered to this worker's own
        # sockets at once and published to Redis for the others, so 1 worker still publishes.
        for build in (socketio, socketio_emit):
            spec = build(redis=True)
            with bench.setup(rows, Setup(spec, "redis", "1 worker").describe()) as row:
                with Server(spec, bench.tmp) as s:
                    row.update(_sends(bench, s, s, [s], bulk))
            spec = build(redis=True)
            with bench.setup(rows, Setup(spec, "redis", "A→B").describe()) as row:
                with _two((spec, spec), bench) as (a, b):
                    row.update(_sends(bench, a, b, [a, b], bulk))


# -- uvicorn options, to pick Teaser's defaults by measurement ------------------------------------


def options(bench: Bench) -> None:
    choices = [{}, {"ws": "websockets"}, {"ws": "wsproto"}, {"loop": "asyncio"}, {"http": "h11"}]
    seconds = bench.plan.variant_seconds
    title = f"Teaser tuned (uvicorn directly) on SQLite under uvicorn options ({seconds:g} s loads)"
    with bench.scenario("options", title) as rows:
        for choice in choices:
            # uvicorn directly: `teaser serve` has no --ws, --loop or --http.
            spec = variant(teaser_tuned(sqlite_url(bench.tmp)), **choice)
            with bench.setup(rows, Setup(spec, "sqlite").describe()) as row:
                with Server(spec, bench.tmp) as server:
                    row.update(_variant(bench, server, seconds))


def _variant(bench: Bench, server: Server, seconds: float) -> dict[str, Any]:
    bench.open_sockets("teaser", server, bench.plan.sockets, _prefix())
    bench.latency(server, 20)
    latency, one, polls = [], [], []
    for _ in range(bench.plan.runs):
        latency.append(bench.latency(server))
        one.append(bench.load(server, [server], batch=1, seconds=seconds))
        polls.append(bench.polls(server, seconds))
    bench.client("close")
    return {
        "latency": aggregate(latency),
        "one_per_request": aggregate(one),
        "polls": aggregate(polls),
    }


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "idle": idle_sockets,
    "targeted": targeted,
    "polls": idle_polls,
    "scaleout": scale_out,
    "options": options,
}
