"""POST /api/privacy/erase: a site deletes one person's data (API key required)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import runtime_of, sending_site
from api.responses import StructResponse
from realtime.contract import Erased, EraseRequest, decode_json


async def erase_person(request: Request) -> Response:
    runtime = runtime_of(request)
    site = await sending_site(request)
    person = decode_json(await request.body(), EraseRequest)
    erasure = await runtime.privacy.erase(
        email=person.email, customer_id=person.customer_id, site_id=site.id
    )
    return StructResponse(Erased(erasure.sessions, erasure.rows))
