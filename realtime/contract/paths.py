"""The values a URL's path carries, one type per parameter name: a route's parameter is
read through `path_value`, so nothing from a path reaches the store unchecked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from realtime.contract.decoding import refusal_of
from realtime.contract.fields import SessionId
from realtime.platform import InvalidInput

MessageId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="A teaser message's id, as its send answered.",
        examples=["tm_018c2e1f3a4bQ2x9vR7mK1pL0sTn"],
        extra={"refusal": "must be a message id: 1-64 letters, digits, '_' or '-'"},
    ),
]

EndpointNumber = Annotated[
    str,
    Meta(
        pattern=r"^[1-9][0-9]{0,9}$",
        description="A webhook endpoint's number within its site (GET /api/webhooks lists them).",
        examples=["1"],
        extra={"refusal": "must be an endpoint's number: 1, 2, 3…"},
    ),
]
DeliveryId = Annotated[
    str,
    Meta(
        pattern=r"^[1-9][0-9]{0,17}$",
        description="A webhook delivery's id, as its endpoint's deliveries list it.",
        examples=["42"],
        extra={"refusal": "must be a delivery's id: a whole number from 1"},
    ),
]

# Every path parameter of every route, by the name the route gives it.
PATH_PARAMETERS: dict[str, Any] = {
    "message_id": MessageId,
    "session_id": SessionId,
    "number": EndpointNumber,
    "delivery_id": DeliveryId,
}


def path_value(params: Mapping[str, Any], name: str) -> str:
    """The route's `name` parameter, checked against its type; a 422 naming it if not."""
    kind = PATH_PARAMETERS[name]
    try:
        value: str = msgspec.convert(params[name], kind)
    except msgspec.ValidationError:
        raise InvalidInput(name, refusal_of(kind) or "is not valid here") from None
    return value
