"""Teaser's app with every SQL statement timed, for `bench.profile --sql`: py-spy shows the
database time only as the thread that spent it, not which statement. Times are
wall time per execute (queueing for the connection's thread and lock waits included); the
table is written to BENCH_SQL_OUT when the worker exits. SQLite's hot writes
(realtime/writes.py) go straight to the driver, past these timers: on SQLite they show up
only as the thread's time in the profile.

Run: uvicorn --factory bench.sqltimed:create_app
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])  # statement -> [count, seconds]


def shape(statement: str) -> str:
    """The statement without its parameters and column lists, so alike ones add up."""
    text = re.sub(r"\s+", " ", statement).strip()
    text = re.sub(r"\(([^()]*)\)", lambda m: "(…)" if len(m.group(1)) > 30 else m.group(0), text)
    return text[:110]


def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    conn.info.setdefault("bench_started", []).append(time.perf_counter())


def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    started = conn.info["bench_started"].pop()
    entry = totals[shape(statement)]
    entry[0] += 1
    entry[1] += time.perf_counter() - started


def dump() -> None:
    rows = sorted(totals.items(), key=lambda item: -item[1][1])
    Path(os.environ["BENCH_SQL_OUT"]).write_text(json.dumps(rows))


def create_app() -> ASGIApp:
    from api.app import create_app as teaser_app

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    app = teaser_app()

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            # Written once the app has shut down (uvicorn leaves without running atexit).
            if message["type"] == "lifespan.shutdown.complete":
                dump()
            await send(message)

        await app(scope, receive, sending if scope["type"] == "lifespan" else send)

    return timed
