"""GET /openapi.json and GET /asyncapi.json."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import Response

from api.openapi import asyncapi_document, openapi_document
from api.responses import FastJSONResponse


@cache
def _version() -> str:
    """The installed distribution's version, read once (it reads package metadata)."""
    try:
        return version("teaser")
    except PackageNotFoundError:
        return "0.0.0"


async def openapi(request: Request) -> Response:
    return FastJSONResponse(openapi_document(_version()))


async def asyncapi(request: Request) -> Response:
    return FastJSONResponse(asyncapi_document(_version()))
