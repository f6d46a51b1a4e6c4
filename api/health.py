"""GET /healthz."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from api.auth import runtime_of
from api.responses import StructResponse
from realtime.contract import Health


async def healthz(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unreachable"
    if runtime.settings.redis_url is None:
        broker = "in-process"
    else:
        broker = "ok" if await runtime.broker.healthy() else "unreachable"
    # Without the database nothing works; without Redis, polling still delivers everything.
    status = "unavailable" if database != "ok" else "degraded" if broker == "unreachable" else "ok"
    body = Health(status, database, broker, runtime.hub.open_sockets)  # type: ignore[arg-type]
    return StructResponse(body, status_code=503 if status == "unavailable" else 200)
