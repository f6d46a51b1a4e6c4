"""GET /metrics: this worker's counters in Prometheus' text format."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.auth import runtime_of


async def metrics(request: Request) -> Response:
    return PlainTextResponse(
        runtime_of(request).metrics.render(), media_type="text/plain; version=0.0.4"
    )
