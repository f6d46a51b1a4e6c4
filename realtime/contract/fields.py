"""The kinds of value the wire carries, each declared once with its bounds and the words
that explain a refusal; every body and frame is built from these."""

from __future__ import annotations

import re
from typing import Annotated, Any

from msgspec import Meta

from realtime.delivery import MAX_EXPIRES_IN_MS, MIN_EXPIRES_IN_MS, PATH_PATTERN
from realtime.platform import EMAIL, FORBIDDEN_CHARACTERS, MAX_POLL_WAIT_MS, SESSION_ID, SITE_ID

CONTROLS = FORBIDDEN_CHARACTERS.pattern.removeprefix("[").removesuffix("]")
NO_CONTROLS = f"^[^{CONTROLS}]*$"
MAX_TOKEN = 200
MAX_POSITION = 2**62 - 1


def whole(pattern: re.Pattern[str]) -> str:
    """A domain regex anchored as JSON Schema wants it (a schema pattern searches)."""
    return f"^(?:{pattern.pattern})$"


def text(max_length: int, description: str) -> Meta:
    return Meta(
        max_length=max_length,
        pattern=NO_CONTROLS,
        description=description,
        extra={"refusal": f"must be at most {max_length} characters, no control characters"},
    )


WordingName = Annotated[
    str | None,
    Meta(
        description="A template's wording: a variant's name, 'original' for the template's "
        "own text; null for a template without variants."
    ),
]
SessionId = Annotated[
    str,
    Meta(
        pattern=whole(SESSION_ID),
        description="The visitor's session id, as the widget reports it.",
        examples=["sess_1700000000000_a1b2c3d4e"],
        extra={"refusal": "must be 1-128 characters of letters, digits, '_', '.', ':' or '-'"},
    ),
]
SiteId = Annotated[
    str,
    Meta(
        pattern=whole(SITE_ID),
        description="The site's id.",
        examples=["woodstock_outlet"],
        extra={"refusal": "must be 1-64 characters of a-z, 0-9, '_' or '-'"},
    ),
]
MessageText = Annotated[
    str,
    Meta(
        pattern=f"^[^{CONTROLS}]*[^{CONTROLS}\\s][^{CONTROLS}]*$",
        description="Plain text, trimmed; at most TEASER_MAX_MESSAGE_LENGTH (500) characters; "
        "no control characters but tab and newline.",
        extra_json_schema={"minLength": 1, "maxLength": 500},
        extra={"refusal": "must be visible text without control characters"},
    ),
]
PathPattern = Annotated[
    str,
    Meta(
        pattern=f"^(?![^{CONTROLS}]*[{CONTROLS}])" + PATH_PATTERN.pattern + "$",
        description="Deliver only on this page (/cart), or on pages under a prefix (/chairs*).",
        extra={"refusal": "must be a path like /cart or a prefix like /chairs*"},
    ),
]
PagePath = Annotated[
    str,
    Meta(
        max_length=512,
        pattern=f"^/[^{CONTROLS}]*$",
        description="The page the visitor is on (its path).",
        extra={"refusal": "must be the page path, starting with '/'"},
    ),
]


def whole_number(low: int, high: int, description: str, refusal: str) -> Any:
    """A whole number from low to high, written as JSON likes: 1000, and also 1000.0, which
    JSON Schema counts as an integer too (Python's json writes floats that way)."""
    extra = {"refusal": refusal}
    return (
        Annotated[int, Meta(ge=low, le=high, description=description, extra=extra)]
        | Annotated[float, Meta(ge=low, le=high, multiple_of=1, description=description)]
    )


ExpiresIn = whole_number(
    MIN_EXPIRES_IN_MS,
    MAX_EXPIRES_IN_MS,
    "Milliseconds until the teaser expires unseen.",
    f"must be whole milliseconds from {MIN_EXPIRES_IN_MS} to {MAX_EXPIRES_IN_MS}",
)
SessionToken = Annotated[
    str,
    Meta(
        max_length=MAX_TOKEN,
        pattern="^[A-Za-z0-9_.-]*$",
        description="The session's token from POST /api/sessions (sites that require one).",
        extra={"refusal": "must be the session token string"},
    ),
]
Position = whole_number(
    0,
    MAX_POSITION,
    "The last seq this client has seen: what came after it is sent again.",
    "must be the last sequence number seen (an integer ≥ 0)",
)
# The server holds a poll at most TEASER_LONG_POLL_SECONDS (25 s by default) of this.
PollWait = whole_number(
    0,
    MAX_POLL_WAIT_MS,
    "Long-polling: milliseconds to hold this poll until a teaser is there, if none is yet "
    "(the answer's `wait` says how long the server granted).",
    f"must be whole milliseconds from 0 to {MAX_POLL_WAIT_MS}",
)
Email = Annotated[
    str,
    Meta(
        max_length=254,
        pattern=f"^(?:[ \\t\\n]*|(?![^{CONTROLS}]*[{CONTROLS}]){EMAIL.pattern})$",
        description="An e-mail address (stored lower-cased).",
        extra={"refusal": "is not an e-mail address"},
    ),
]
