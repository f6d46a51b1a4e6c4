"""POST /api/events: what the widget reports about its visitor."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import runtime_of, widget_site
from api.responses import FastJSONResponse
from api.schemas import parse_json
from realtime.events import parse_event


async def record_event(request: Request) -> Response:
    runtime = runtime_of(request)
    # Any content type: leave events come as text/plain beacons, which need no preflight.
    event = parse_event(parse_json(await request.body()))
    await widget_site(request, event.site_id)
    runtime.event_limiter.take(f"{event.site_id}:{event.session_id}")
    outcome = await runtime.events.record(event)
    return FastJSONResponse({"score": outcome.score, "triggered": outcome.triggered}, 202)
