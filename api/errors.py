"""Every failure leaves as JSON {"error": {"code", "message"}}, mapped here and only here."""

from __future__ import annotations

import logging
import math

from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from api.responses import error_response
from realtime.contract import MalformedJSON
from realtime.platform import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    StoreUnavailable,
    TeaserError,
    Unauthorized,
)

logger = logging.getLogger("teaser.api")

STATUS_BY_ERROR: dict[type[TeaserError], int] = {
    MalformedJSON: 400,
    BadRequest: 400,
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    StoreUnavailable: 503,
    RateLimited: 429,
}

# Seconds a client waits before it tries again when the database is away: SQLAlchemy opens
# fresh connections at once, so a blip is over by then, and a restart soon after.
STORE_RETRY_AFTER = 1

CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def status_for(exc: TeaserError) -> int:
    return next((s for kind, s in STATUS_BY_ERROR.items() if isinstance(exc, kind)), 400)


async def teaser_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TeaserError)
    response = error_response(status_for(exc), exc.code, exc.message)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, StoreUnavailable):
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
    return response


async def database_error(request: Request, exc: Exception) -> Response:
    """A lost database connection met outside the store (which retries and then raises
    StoreUnavailable itself), e.g. reading a site: the same 503, not a 500."""
    assert isinstance(exc, DBAPIError)
    if not exc.connection_invalidated:
        return await unexpected_error(request, exc)
    logger.warning("database unreachable on %s %s", request.method, request.url.path)
    unavailable = StoreUnavailable(
        "the database is unreachable; try again shortly", code="database_unavailable"
    )
    return await teaser_error(request, unavailable)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "http_error")
    message = str(exc.detail)
    return error_response(exc.status_code, code, message, **(exc.headers or {}))


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client left while its body was being read (a tab closed mid-poll): nobody will
    read this answer, and nothing failed here."""
    return error_response(400, "client_disconnected", "the client went away")


async def unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "unexpected server error")


HANDLERS: dict[type[Exception] | int, ExceptionHandler] = {
    TeaserError: teaser_error,
    DBAPIError: database_error,
    ClientDisconnect: client_gone,
    HTTPException: http_error,
    Exception: unexpected_error,
}
