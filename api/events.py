"""POST /api/events: what the widget reports about its visitor; POST /api/events/server:
the same events from the shop's backend, with the site's key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import client_address, runtime_of, sending_site, widget_site
from api.responses import StructResponse
from realtime.contract import EventAccepted, EventReport, decode_json
from realtime.platform import InvalidInput, Unauthorized


async def record_event(request: Request) -> Response:
    runtime = runtime_of(request)
    # Any content type: leave events come as text/plain beacons, which need no preflight.
    report = decode_json(await request.body(), EventReport)
    event = report.event()
    await widget_site(runtime, request, event.site_id)
    runtime.session_tokens.check(event.site_id, event.session_id, report.token)
    runtime.limits.events_per_ip.take(client_address(request))
    runtime.limits.events_per_session.take(f"{event.site_id}:{event.session_id}")
    outcome = await runtime.events.record(event)
    return StructResponse(EventAccepted(outcome.score, outcome.triggered), 202)


async def record_server_event(request: Request) -> Response:
    """No Origin and no session token: the key vouches for the sender. The session must be
    one the site already has; a backend's many visitors share its one address, so only
    the per-session limits apply."""
    runtime = runtime_of(request)
    site = await sending_site(request)
    report = decode_json(await request.body(), EventReport)
    event = report.event()
    if event.site_id != site.id:
        raise InvalidInput("siteId", f"must be the site of the key (X-Site-ID: {site.id})")
    if runtime.visitor_revocations(site.id, event.session_id):
        raise Unauthorized("this session was ended by its site", code="invalid_session_token")
    runtime.limits.events_per_session.take(f"{event.site_id}:{event.session_id}")
    outcome = await runtime.events.record(event, from_server=True)
    return StructResponse(EventAccepted(outcome.score, outcome.triggered), 202)
