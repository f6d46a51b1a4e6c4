"""What every answer may be besides its own: the error, and the health report."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct


class ErrorDetail(Struct):
    code: Annotated[str, Meta(description="Stable and machine-readable: branch on this.")]
    message: Annotated[str, Meta(description="For people; names the field at fault.")]


class ErrorAnswer(Struct):
    """Every failure, from every route, in one shape."""

    error: ErrorDetail


class Health(Struct, rename="camel"):
    status: Literal["ok", "degraded", "unavailable"]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable", "in-process"]
    open_sockets: int
