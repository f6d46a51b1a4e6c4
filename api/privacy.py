"""POST /api/privacy/erase: a site deletes one person's data (API key required)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import runtime_of, sending_site
from api.responses import FastJSONResponse
from api.schemas import parse_json
from realtime.platform import InvalidInput


async def erase_person(request: Request) -> Response:
    runtime = runtime_of(request)
    site = await sending_site(request)
    payload = parse_json(await request.body())
    if not isinstance(payload, dict):
        raise InvalidInput("body", "must be a JSON object")
    email, customer_id = payload.get("email"), payload.get("customerId")
    for name, value in (("email", email), ("customerId", customer_id)):
        if value is not None and (not isinstance(value, str) or len(value) > 254):
            raise InvalidInput(name, "must be a string of at most 254 characters")
    erasure = await runtime.privacy.erase(email=email, customer_id=customer_id, site_id=site.id)
    return FastJSONResponse({"sessions": erasure.sessions, "deleted": erasure.rows})
