from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from realtime.contract import encode


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class StructResponse(JSONResponse):
    """An answer declared in the contract, written by msgspec straight from its Struct."""

    def render(self, content: Any) -> bytes:
        return encode(content)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, **headers: str) -> FastJSONResponse:
    return FastJSONResponse(error_body(code, message), status_code=status, headers=headers or None)
