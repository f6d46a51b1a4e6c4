"""A Teaser worker under tracemalloc, for bench.memprofile. SIGUSR1 marks a baseline;
SIGUSR2 writes what is allocated since then, per allocation traceback, to BENCH_TRACE_OUT.

Run: python -m bench.traced_server PORT WS_IMPL
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

import uvicorn

snapshots: dict[str, tracemalloc.Snapshot] = {}


def mark(signum: int, frame: FrameType | None) -> None:
    gc.collect()
    snapshots["baseline"] = tracemalloc.take_snapshot()


def dump(signum: int, frame: FrameType | None) -> None:
    gc.collect()
    grown = tracemalloc.take_snapshot().compare_to(snapshots["baseline"], "traceback")
    rows = [
        {
            "bytes": stat.size_diff,
            "blocks": stat.count_diff,
            "frames": [f"{f.filename}:{f.lineno}" for f in reversed(stat.traceback)],
        }
        for stat in grown
        if stat.size_diff > 0
    ]
    Path(os.environ["BENCH_TRACE_OUT"]).write_text(json.dumps(rows))


def main() -> None:
    port, ws = int(sys.argv[1]), sys.argv[2]
    tracemalloc.start(30)
    signal.signal(signal.SIGUSR1, mark)
    signal.signal(signal.SIGUSR2, dump)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        ws=ws,
        log_level="warning",
        access_log=False,
        ws_max_size=65536,
    )


if __name__ == "__main__":
    main()
