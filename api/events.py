"""POST /api/events: what the widget reports about its visitor."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import client_address, runtime_of, widget_site
from api.responses import FastJSONResponse
from api.schemas import parse_json
from realtime.platform import InvalidInput
from realtime.targeting import parse_event


async def record_event(request: Request) -> Response:
    runtime = runtime_of(request)
    # Any content type: leave events come as text/plain beacons, which need no preflight.
    body = parse_json(await request.body())
    event = parse_event(body)
    await widget_site(request, event.site_id)
    token = body.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > 200):
        raise InvalidInput("token", "must be the session token string")
    runtime.session_tokens.check(event.site_id, event.session_id, token)
    runtime.limits.events_per_ip.take(client_address(request))
    runtime.limits.events_per_session.take(f"{event.site_id}:{event.session_id}")
    outcome = await runtime.events.record(event)
    return FastJSONResponse({"score": outcome.score, "triggered": outcome.triggered}, 202)
