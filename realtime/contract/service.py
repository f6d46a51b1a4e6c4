"""What every answer may be besides its own: the error; and the health reports."""

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


class Liveness(Struct):
    """The event loop answers: all a liveness probe should ask, so that an outage of the
    database never gets a healthy worker restarted."""

    status: Literal["ok"]


class Readiness(Struct, rename="camel"):
    """Whether this worker should get traffic: the database and the broker answer, and no
    SIGTERM has come (from then on it drains: `draining`, 503)."""

    status: Literal["ready", "unavailable", "draining"]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable", "in-process"]
