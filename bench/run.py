"""script/bench: measure Teaser against python-socketio and bare Starlette in one run.

Prints the tables and writes bench/results.json. `--quick` is a smoke run (one run per
figure, short loads, fewer setups); `--only idle,polls` runs a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.bench import Bench, Plan
from bench.crowd import CROWD_SCENARIOS
from bench.loadgen import have_wrk
from bench.meter import load_average
from bench.report import render
from bench.scenarios import SCENARIOS as ISSUE_6_SCENARIOS
from bench.services import reachable
from bench.targets import best_options, evaluate

HERE = Path(__file__).resolve().parent
FULL = Plan(
    quick=False,
    runs=3,
    socket_counts=(1000, 5000, 10000),
    latency_sends=500,
    load_seconds=10,
    poll_seconds=10,
    variant_seconds=4,
)
QUICK = Plan(
    quick=True,
    runs=1,
    socket_counts=(1000,),
    latency_sends=100,
    load_seconds=2,
    poll_seconds=2,
    variant_seconds=2,
    lone_sends=100,
    many_counts=(10_000,),
)
QUICK_SCENARIOS = ("idle", "targeted", "polls", "scaleout")
SCENARIOS = {**ISSUE_6_SCENARIOS, **CROWD_SCENARIOS}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every server and client this run started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    names = (
        args.only.split(",") if args.only else list(QUICK_SCENARIOS if args.quick else SCENARIOS)
    )
    missing = [
        n for n in ("PostgreSQL", "Redis") if not reachable({"PostgreSQL": 5432, "Redis": 6379}[n])
    ]
    if missing and any(n in names for n in ("polls", "scaleout")):
        print(f"script/bench: {' and '.join(missing)} not reachable on 127.0.0.1", file=sys.stderr)
        return 1
    load1 = load_average()
    if load1 > 0.5:
        print(
            f"WARNING: 1-minute load average is {load1} at start: other work is running on "
            "this 2-core machine and will skew the figures.",
            file=sys.stderr,
        )
    started = time.monotonic()
    # A smoke run must not overwrite the last full run's figures.
    output = Path(args.output or HERE / ("results-quick.json" if args.quick else "results.json"))
    with tempfile.TemporaryDirectory(prefix="teaser-bench-") as tmp:
        bench = Bench(plan, Path(tmp))
        try:
            for name in names:
                SCENARIOS[name](bench)
                # Written after every scenario, so a long run that dies keeps what it measured.
                results = _results(plan, bench, load1, time.monotonic() - started)
                output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        finally:
            bench.close()
    print(render(results))
    print(f"\nwrote {output} in {results['meta']['runtime_s']:.0f} s")
    return 0


def _results(plan: Plan, bench: Bench, load1: float, runtime: float) -> dict[str, Any]:
    results: dict[str, Any] = {
        "meta": {
            "quick": plan.quick,
            "runs": plan.runs,
            "plan": plan.__dict__,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "runtime_s": round(runtime, 1),
            "load1_at_start": load1,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "poll_client": "wrk" if have_wrk() else "python",
            "git": _git(),
            "versions": {
                p: version(p)
                for p in (
                    "uvicorn",
                    "starlette",
                    "python-socketio",
                    "aiohttp",
                    "websockets",
                    "wsproto",
                    "uvloop",
                    "httptools",
                    "sqlalchemy",
                )
            },
        },
        "scenarios": bench.scenarios,
    }
    results["targets"] = evaluate(results)
    results["best_options"] = best_options(results)
    return results


def _git() -> dict[str, Any]:
    """Which server code was measured: other work may be under way in the same tree."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "realtime", "api").splitlines()
    return {"head": git("rev-parse", "--short", "HEAD"), "uncommitted_server_files": len(dirty)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="script/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run, under 3 minutes")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--output",
        help="default: bench/results.json, or bench/results-quick.json with --quick",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
