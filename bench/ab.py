"""Is a change faster? Serve two checkouts of Teaser, the base (A) and this one (B), and
run the same load against each in turn, A B B A A B…, on a fresh server each time. The
machine's speed drifts by tens of percent within minutes (other tenants share its cores),
so a figure is only compared with the one measured next to it: the result is the median
of the paired ratios B/A, with their spread.

Run: .venv/bin/python -m bench.ab sends|bulk|latency|polls [--base REV] [--rounds 6] [--seconds 5]
     [--env KEY=VALUE …] [--scaleout]  (the environment applies to B only)
On SQLite and one worker; --scaleout: PostgreSQL + Redis, sends to A, sockets on B.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.bench import Bench
from bench.loadgen import wrk_polls
from bench.run import QUICK
from bench.scenarios import fd_limit
from bench.servers import ROOT, Server, ServerSpec
from bench.services import fresh_postgres
from bench.specs import sqlite_url, teaser_tuned

POLLS = "/api/teaser-messages"
FIGURES = {  # load: the figures compared, and whether more is better
    "sends": {"msgs_per_s": True, "p99_ms": False},
    "bulk": {"msgs_per_s": True, "p99_ms": False},
    "latency": {"p50_ms": False, "p99_ms": False},
    "polls": {"requests_per_s": True, "p99_ms": False},
}


def base_checkout(revision: str, into: Path) -> Path:
    """The base revision's files in a directory of their own; it uses this venv."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(into), revision],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return into


def measure(
    bench: Bench, spec: ServerSpec, load: str, seconds: float, across: bool
) -> dict[str, Any]:
    """One run on fresh servers: one worker, or with `across` two (sends to A, sockets on B)."""
    with ExitStack() as stack:
        sender = stack.enter_context(Server(spec, bench.tmp))
        if load == "polls":  # idle polls from wrk: no sockets
            wrk_polls(sender.http_base + POLLS, 1)  # warm-up
            return wrk_polls(sender.http_base + POLLS, seconds)
        holder = stack.enter_context(Server(spec, bench.tmp)) if across else sender
        bench.open_sockets("teaser", holder, bench.plan.sockets, "ab")
        try:
            bench.latency(sender, 20)  # warm-up, as in the benchmark
            if load == "latency":
                return bench.latency(sender, int(seconds * 100))
            batch = 1 if load == "sends" else bench.plan.bulk
            servers = [sender, holder] if across else [sender]
            return bench.load(sender, servers, batch=batch, seconds=seconds)
        finally:
            bench.client("close")


def order(rounds: int) -> list[str]:
    """A B B A A B…: each side goes first as often as the other, so a steady drift in the
    machine's speed favours neither."""
    return [side for i in range(rounds) for side in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ab", description=__doc__)
    parser.add_argument("load", choices=sorted(FIGURES))
    parser.add_argument("--base", default="HEAD", help="git revision served as A")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE, for B only")
    parser.add_argument(
        "--scaleout",
        action="store_true",
        help="PostgreSQL + Redis, sends to worker A and sockets on worker B",
    )
    args = parser.parse_args(argv)
    fd_limit()
    extra = dict(item.split("=", 1) for item in args.env)
    figures = FIGURES[args.load]
    results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="teaser-ab-") as tmp, ExitStack() as stack:
        root = base_checkout(args.base, Path(tmp) / "base")
        stack.callback(
            subprocess.run, ["git", "worktree", "remove", "--force", str(root)], cwd=ROOT
        )
        bench = Bench(QUICK, Path(tmp))
        stack.callback(bench.close)
        for side in order(args.rounds):
            if args.scaleout:
                url = stack.enter_context(fresh_postgres())
                spec = teaser_tuned(url, redis=True)
            else:
                spec = teaser_tuned(sqlite_url(Path(tmp)))
            if side == "A":
                spec = replace(spec, root=root)
            else:
                spec = replace(spec, env={**spec.env, **extra})
            result = measure(bench, spec, args.load, args.seconds, args.scaleout)
            results[side].append(result)
            shown = "  ".join(f"{name} {result[name]:>9.2f}" for name in figures)
            print(f"{side}  {shown}", file=sys.stderr)
    print(
        f"\n{args.load}: B (this checkout{' + ' if extra else ''}{' '.join(args.env)}) "
        f"against A ({args.base}), {args.rounds} pairs"
    )
    for name, more_is_better in figures.items():
        ratios = sorted(
            b[name] / a[name] for a, b in zip(results["A"], results["B"], strict=True) if a[name]
        )
        a_median = statistics.median(r[name] for r in results["A"])
        b_median = statistics.median(r[name] for r in results["B"])
        better = "higher is better" if more_is_better else "lower is better"
        ratio = statistics.median(ratios)
        print(
            f"  {name:<11} A {a_median:9.2f}  B {b_median:9.2f}  B/A {ratio:.3f}"
            f" ({ratios[0]:.3f}–{ratios[-1]:.3f}; {better})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
