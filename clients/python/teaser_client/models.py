"""What goes over the wire, as msgspec Structs: the camelCase names live here and nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Priority = Literal["manual", "auto"]
Status = Literal["pending", "delivered", "expired"]
DeliveredVia = Literal["websocket", "poll"]


class Draft(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True, kw_only=True):
    """One teaser to send; what `send` builds and `send_many` takes a list of."""

    session_id: str
    message: str
    priority: Priority = "manual"
    # Omitted, not null, when unset: the server applies its own default (300000 ms).
    expires_in: int | None = None
    only_on_path: str | None = None


class Message(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A stored teaser. `delivered_via`/`delivered_at` are only reported by `status()`."""

    id: str
    session_id: str
    site_id: str
    message: str
    priority: Priority
    created_at: datetime
    expires_at: datetime
    # Null only for a message stored before the server numbered each session's messages.
    seq: int | None
    status: Status
    only_on_path: str | None = None
    delivered_via: DeliveredVia | None = None
    delivered_at: datetime | None = None


class Batch(msgspec.Struct, frozen=True):
    """The answer to a bulk send."""

    messages: list[Message]


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True):
    error: ErrorDetail
