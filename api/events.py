"""POST /api/events: what the widget reports about its visitor."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import client_address, runtime_of, widget_site
from api.responses import StructResponse
from realtime.contract import EventAccepted, EventReport, decode_json


async def record_event(request: Request) -> Response:
    runtime = runtime_of(request)
    # Any content type: leave events come as text/plain beacons, which need no preflight.
    report = decode_json(await request.body(), EventReport)
    event = report.event()
    await widget_site(request, event.site_id)
    runtime.session_tokens.check(event.site_id, event.session_id, report.token)
    runtime.limits.events_per_ip.take(client_address(request))
    runtime.limits.events_per_session.take(f"{event.site_id}:{event.session_id}")
    outcome = await runtime.events.record(event)
    return StructResponse(EventAccepted(outcome.score, outcome.triggered), 202)
