"""The probes: GET /livez, GET /readyz, and GET /healthz (kept for what was set up with it)."""

from __future__ import annotations

import asyncio
from typing import Literal

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from api.auth import runtime_of
from api.draining import Drain
from api.responses import StructResponse
from realtime.contract import Health, Liveness, Readiness
from realtime.runtime import Runtime

# A probe answers within an orchestrator's timeout (Kubernetes': 1 s by default) even when
# what it asks about hangs rather than fails.
CHECK_TIMEOUT = 0.8

LIVE = Liveness("ok")


async def livez(request: Request) -> Response:
    return StructResponse(LIVE)


async def readyz(request: Request) -> Response:
    drain: Drain = request.app.state.drain
    runtime = runtime_of(request)
    database, broker = await asyncio.gather(_database(runtime), _broker(runtime))
    status: Literal["ready", "unavailable", "draining"]
    if drain.started:
        status = "draining"
    elif database != "ok" or broker == "unreachable":
        status = "unavailable"
    else:
        status = "ready"
    body = Readiness(status, database, broker)
    return StructResponse(body, status_code=200 if status == "ready" else 503)


async def healthz(request: Request) -> Response:
    runtime = runtime_of(request)
    database, broker = await asyncio.gather(_database(runtime), _broker(runtime))
    # Without the database nothing works; without Redis, polling still delivers everything.
    status = "unavailable" if database != "ok" else "degraded" if broker == "unreachable" else "ok"
    body = Health(status, database, broker, runtime.hub.open_sockets)  # type: ignore[arg-type]
    return StructResponse(body, status_code=503 if status == "unavailable" else 200)


async def _database(runtime: Runtime) -> Literal["ok", "unreachable"]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return "unreachable"
    return "ok"


async def _broker(runtime: Runtime) -> Literal["ok", "unreachable", "in-process"]:
    if runtime.settings.redis_url is None:
        return "in-process"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return "ok" if await runtime.broker.healthy() else "unreachable"
    except TimeoutError:
        return "unreachable"
