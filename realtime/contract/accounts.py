"""Operators signing in, and a site erasing one person's data."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from realtime.contract.fields import SiteId

Secret = Annotated[str, Meta(max_length=1024)]


class LoginRequest(Struct, rename="camel"):
    site_id: SiteId
    email: Annotated[str, Meta(max_length=254, description="The operator's e-mail address.")]
    password: Secret


class LogoutQuery(Struct):
    """POST /api/operator/logout's query."""

    everywhere: Annotated[
        bool,
        Meta(
            description="End every session of this operator (other browsers, a lost phone), "
            "not only this one.",
            extra={"refusal": "must be true or false"},
        ),
    ] = False


class SignInLinkQuery(Struct):
    """GET /dashboard/sign-in's query: the token of a dev server's one-time link."""

    token: Annotated[
        str,
        Meta(
            max_length=128,
            # secrets.token_urlsafe's alphabet: anything else can't be a link's token.
            pattern="^[A-Za-z0-9_-]*$",
            description="From the link the server printed at its start (dev mode only).",
            extra={"refusal": "must be the token of a sign-in link"},
        ),
    ] = ""


class OperatorRef(Struct):
    id: int
    email: str


class SignedIn(Struct, rename="camel"):
    """Who is signed in, and what the dashboard needs to act for them."""

    site_id: str
    operator: Annotated[OperatorRef | None, Meta(description="null for a script with a key.")]
    csrf_token: Annotated[
        str | None, Meta(description="Send as X-CSRF-Token on every POST; null for a script.")
    ]
    max_message_length: int


PersonKey = Annotated[
    str, Meta(max_length=254, extra={"refusal": "must be a string of at most 254 characters"})
]


class EraseRequest(Struct, rename="camel"):
    """Whose data to delete: by e-mail address, by the shop's customer id, or both."""

    email: PersonKey | None = None
    customer_id: PersonKey | None = None


# One of the two must name someone: an erase of nobody is refused.
ERASE_BODY = Annotated[
    EraseRequest,
    Meta(
        extra_json_schema={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
                for name in ("email", "customerId")
            ]
        }
    ),
]


class Erased(Struct):
    sessions: Annotated[int, Meta(description="Sessions of this person that were deleted.")]
    deleted: Annotated[dict[str, int], Meta(description="Rows deleted, by table.")]
