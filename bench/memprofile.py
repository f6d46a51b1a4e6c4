"""What an idle session socket costs a Teaser worker, and which code allocates it: the
worker runs under tracemalloc, N sockets are opened, and the growth per socket is
attributed to the innermost Teaser line on the allocation's stack (else the library line).
tracemalloc sees Python allocations only; the RSS figure also holds C buffers and slack.

Run: .venv/bin/python -m bench.memprofile [--sockets 2000] [--ws websockets-sansio]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from bench.loadgen import ClientProcess
from bench.profile import PROJECT, shorten
from bench.servers import ROOT, free_port
from bench.specs import sqlite_url, teaser_env


def attribute(frames: list[str]) -> tuple[str, str]:
    """(innermost Teaser line, innermost line) of an allocation's stack."""
    short = [shorten(frame) for frame in frames]
    ours = next((f for f in short if f.startswith(PROJECT)), "(no Teaser frame)")
    return ours, short[0]


def report(rows: list[dict[str, object]], sockets: int, rss_kb: float, top: int = 15) -> str:
    by_teaser: Counter[str] = Counter()
    by_site: Counter[str] = Counter()
    for row in rows:
        ours, site = attribute(row["frames"])  # type: ignore[arg-type]
        by_teaser[ours] += int(row["bytes"])  # type: ignore[call-overload]
        by_site[site] += int(row["bytes"])  # type: ignore[call-overload]
    traced = sum(by_site.values()) / sockets / 1024
    lines = [
        f"{sockets} sockets: RSS {rss_kb:.1f} KB/socket, Python heap {traced:.1f} KB/socket",
        "",
        "per socket, by the Teaser line that allocated (directly or through a library):",
    ]
    lines += [f"  {n / sockets / 1024:6.2f} KB  {name}" for name, n in by_teaser.most_common(top)]
    lines += ["", "per socket, by allocation site:"]
    lines += [f"  {n / sockets / 1024:6.2f} KB  {name}" for name, n in by_site.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memprofile", description=__doc__)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--ws", default="websockets-sansio")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="teaser-mem-") as tmp:
        port, out = free_port(), Path(tmp) / "growth.json"
        env = {
            **os.environ,
            **teaser_env(sqlite_url(Path(tmp)), False),
            "BENCH_TRACE_OUT": str(out),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.traced_server", str(port), args.ws], cwd=ROOT, env=env
        )
        client = ClientProcess()
        try:
            _wait(port)
            base = f"ws://127.0.0.1:{port}"
            client("open", wire="teaser", base=base, count=100, prefix="warm")
            client("close")
            time.sleep(1)
            rss = psutil.Process(server.pid).memory_info().rss
            server.send_signal(signal.SIGUSR1)
            time.sleep(2)
            client("open", wire="teaser", base=base, count=args.sockets, prefix="mem")
            time.sleep(2)
            rss_kb = (psutil.Process(server.pid).memory_info().rss - rss) / args.sockets / 1024
            server.send_signal(signal.SIGUSR2)
            while not out.exists():
                time.sleep(0.5)
            time.sleep(1)
            print(report(json.loads(out.read_text()), args.sockets, rss_kb))
        finally:
            client.stop()
            server.terminate()
            server.wait(timeout=20)
    return 0


def _wait(port: int) -> None:
    for _ in range(400):  # migrations under tracemalloc take a while
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the traced server did not start")


if __name__ == "__main__":
    sys.exit(main())
