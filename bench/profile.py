"""Where a Teaser worker spends its CPU under one of the benchmark's loads. py-spy samples
the worker (all threads, idle excluded) while the load runs; the summary names the hot
functions as file:function with their share of samples.

Run: .venv/bin/python -m bench.profile polls|sends|bulk|latency|scaleout|scaleout-latency
     [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from bench.bench import Bench
from bench.loadgen import wrk_polls
from bench.run import QUICK
from bench.scenarios import fd_limit
from bench.servers import ROOT, Server
from bench.services import fresh_postgres
from bench.specs import sqlite_url, teaser_tuned

PROJECT = ("realtime/", "api/")
PY_SPY = str(Path(sys.executable).with_name("py-spy"))  # installed by the bench extra
Load = Callable[[Bench, Server, Server, float], object]


def shorten(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def frames(stack: str) -> list[str]:
    """py-spy raw frames "function (path)" as "path:function", outermost first."""
    parsed = []
    for frame in stack.split(";"):
        if frame.startswith("thread ("):  # --threads: which thread the stack is from
            continue
        function, _, path = frame.rpartition(" (")
        parsed.append(f"{shorten(path.rstrip(')'))}:{function}")
    return parsed


def thread_name(stack: str) -> str:
    """With --threads, py-spy starts each stack with "thread (id): name"."""
    first = stack.split(";", 1)[0]
    if not first.startswith("thread ("):
        return "?"
    name = first.split("): ", 1)[-1]
    return "event loop" if name == "MainThread" else name


def summarise(raw: str, top: int = 15) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples, chain = int(count), frames(stack)
        if not chain:
            continue
        total += samples
        threads[thread_name(stack)] += samples
        own[chain[-1]] += samples
        packages[chain[-1].split("/", 1)[0].split(".py", 1)[0]] += samples
        for frame in set(chain):
            inclusive[frame] += samples
    if not total:
        return "no samples (the worker was idle)"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [f"{total} samples", "", "by thread:"]
    lines += [f"  {pct(n)}  {name}" for name, n in threads.most_common()]
    lines += ["", "self time by package:"]
    lines += [f"  {pct(n)}  {name}" for name, n in packages.most_common(10)]
    lines += ["", "hottest functions (self):"]
    lines += [f"  {pct(n)}  {name}" for name, n in own.most_common(top)]
    lines += ["", "Teaser functions (inclusive: the function and all it calls):"]
    ours = [(name, n) for name, n in inclusive.most_common() if name.startswith(PROJECT)]
    lines += [f"  {pct(n)}  {name}" for name, n in ours[:top]]
    return "\n".join(lines)


def sql_table(rows: list[tuple[str, tuple[int, float]]], top: int = 12) -> str:
    total = sum(spent for _, (_, spent) in rows) or 1.0
    lines = ["SQL statements by wall time (whole server life; share of all statement time):"]
    for statement, (count, spent) in rows[:top]:
        lines.append(
            f"  {100 * spent / total:5.1f}%  {count:7d}×  {1000 * spent / count:7.2f} ms  "
            f"{statement}"
        )
    return "\n".join(lines)


@contextmanager
def sampling(
    servers: list[Server], seconds: float, out: Path, gil_only: bool = False
) -> Iterator[list[Path]]:
    files = [out / f"pyspy-{i}.txt" for i in range(len(servers))]
    spies = [
        subprocess.Popen(
            [
                PY_SPY,
                "record",
                "--pid",
                str(server.workers()[0].pid),
                "--rate",
                "200",
                "--duration",
                f"{int(seconds)}",
                "--format",
                "raw",
                "--nolineno",
                "--threads",
                "--full-filenames",
                "--nonblocking",
                *(["--gil"] if gil_only else []),
                "-o",
                str(path),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for server, path in zip(servers, files, strict=True)
    ]
    yield files
    for spy in spies:
        spy.wait(timeout=seconds + 30)


def _polls(bench: Bench, sender: Server, holder: Server, seconds: float) -> object:
    return wrk_polls(sender.http_base + "/api/teaser-messages", seconds)


def _sends(batch: int) -> Load:
    def load(bench: Bench, sender: Server, holder: Server, seconds: float) -> object:
        servers = [sender] if holder is sender else [sender, holder]
        return bench.load(sender, servers, batch=batch, seconds=seconds)

    return load


def _latency(bench: Bench, sender: Server, holder: Server, seconds: float) -> object:
    return bench.latency(sender, int(seconds * 150))


LOADS: dict[str, tuple[Load, bool]] = {  # load, and whether it needs sockets open
    "polls": (_polls, False),
    "sends": (_sends(1), True),
    "bulk": (_sends(100), True),
    "latency": (_latency, True),
    "scaleout": (_sends(1), True),
    "scaleout-latency": (_latency, True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__)
    parser.add_argument("load", choices=sorted(LOADS))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis, not SQLite")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (samples one)")
    parser.add_argument("--sql", action="store_true", help="also time each SQL statement")
    parser.add_argument("--keep", type=Path, help="also copy py-spy's raw stacks here")
    parser.add_argument(
        "--gil", action="store_true", help="only samples of the thread holding the GIL"
    )
    args = parser.parse_args(argv)
    fd_limit()
    load, needs_sockets = LOADS[args.load]
    with tempfile.TemporaryDirectory(prefix="teaser-profile-") as tmp, ExitStack() as stack:
        bench = Bench(QUICK, Path(tmp))
        stack.callback(bench.close)
        two = args.load.startswith("scaleout")
        if two or args.postgres:
            spec = teaser_tuned(
                stack.enter_context(fresh_postgres()), redis=True, workers=args.workers
            )
        else:
            spec = teaser_tuned(sqlite_url(Path(tmp)), redis=args.workers > 1, workers=args.workers)
        sql_out = Path(tmp) / "sql.json"
        if args.sql:
            env = {**spec.env, "BENCH_SQL_OUT": str(sql_out)}
            spec = replace(spec, app="bench.sqltimed:create_app", env=env)
        sender = stack.enter_context(Server(spec, Path(tmp)))
        holder_out = Path(tmp) / "sql-holder.json"
        if args.sql and two:  # each worker writes its own statement times
            holder_spec = replace(spec, env={**spec.env, "BENCH_SQL_OUT": str(holder_out)})
        else:
            holder_spec = spec
        holder = stack.enter_context(Server(holder_spec, Path(tmp))) if two else sender
        if needs_sockets:
            bench.open_sockets("teaser", holder, 1000, "profile")
            bench.latency(sender, 20)  # warm-up, as in the benchmark
        else:
            _polls(bench, sender, holder, 1)
        servers = [sender, holder] if two else [sender]
        with sampling(servers, args.seconds, Path(tmp), args.gil) as files:
            print(load(bench, sender, holder, args.seconds + 1), file=sys.stderr)
        for name, path in zip(("worker A (sender)", "worker B (sockets)"), files, strict=False):
            print(f"== {args.load}: {name if two else 'worker'}\n{summarise(path.read_text())}\n")
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, args.keep / f"{args.load}-{path.name}")
        if args.sql:
            stack.close()  # the worker writes its statement times as it exits
            print(sql_table(json.loads(sql_out.read_text())))
            if two:
                print("worker B (sockets):")
                print(sql_table(json.loads(holder_out.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
