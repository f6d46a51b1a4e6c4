"""GET /metrics: every worker's counters in Prometheus' text format (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.auth import runtime_of
from realtime.platform import prepare_worker_metrics

__all__ = ["metrics", "prepare_worker_metrics"]


async def metrics(request: Request) -> Response:
    return PlainTextResponse(
        runtime_of(request).metrics.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4
    )
