"""POST /api/events: what the widget (or a shop's backend) reports about a visitor."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated
from zoneinfo import available_timezones

from msgspec import Meta, Struct

from realtime.contract.fields import NO_CONTROLS, Email, SessionId, SessionToken, SiteId, text
from realtime.platform import InvalidInput
from realtime.targeting import CUSTOM_TYPES, EVENT_NAME, EventType, VisitorEvent

MAX_SECONDS = 86_400
Url = Annotated[str, text(2048, "The page's full URL.")]
UtmValue = Annotated[str, text(200, "A UTM parameter's value.")]
# RFC 3339 with its offset, as `new Date().toISOString()` writes it; the calendar (no 30
# February) is checked when the event is built.
# Only days the calendar has, so that what the schema allows the server takes (a fuzzer
# once sent 31 November): 1-28 in any month, 29-30 but in February, 31 in the long months,
# and 29 February in leap years.
_YEAR = r"(?!0000)[0-9]{4}"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DAY = (
    rf"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    rf"|{_LEAP_YEAR}-02-29)"
)
EVENT_TIME = (
    rf"^(?:{_DAY}"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))?$"
)
EVENT_TIME_REFUSAL = "must be an RFC 3339 time with its offset, like 2026-12-01T09:30:00.000Z"
EventTime = Annotated[
    str,
    Meta(
        pattern=EVENT_TIME,
        description="When it happened, as the browser tells it (RFC 3339). A replay of an "
        "event with the same type, page and ts is counted once; without ts, a repeat of the "
        "same type and page is taken for a replay.",
        examples=["2026-12-01T09:30:00.000Z"],
        extra={"refusal": EVENT_TIME_REFUSAL},
    ),
]
TimeZoneName = Annotated[
    str,
    Meta(
        max_length=64,
        pattern=r"^[ \t\n]*(?:[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2})?[ \t\n]*$",
        description="The browser's IANA time zone (Europe/Berlin). A well-formed name this "
        "server's time zone data lacks is stored as absent: a browser may know a newer zone.",
        examples=["Europe/Berlin"],
        extra={"refusal": "must be an IANA time zone name, like Europe/Berlin"},
    ),
]


EventName = Annotated[
    str,
    Meta(
        pattern=EVENT_NAME,
        description="A track or goal event's name, as the site's rules file declares it "
        "([[event]] name); a name it does not declare is refused.",
        examples=["added_to_cart"],
        extra={
            "refusal": "must be an event name: a letter, then up to 63 letters, digits, "
            "'_', '.', ':' or '-'"
        },
    ),
]
MAX_PROPS = 50
PROP_REFUSAL = "must be a string (at most 500 characters), a number, true, false or null"
PropName = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$",
        extra={"refusal": "keys must be names of up to 64 letters, digits, '_', '.', ':' or '-'"},
    ),
]
PropValue = Annotated[
    Annotated[str, Meta(max_length=500, pattern=NO_CONTROLS)] | int | float | bool | None,
    Meta(extra={"refusal": PROP_REFUSAL}),
]
Props = Annotated[
    dict[PropName, PropValue],
    Meta(
        max_length=MAX_PROPS,
        description="A track or goal event's properties: a flat object of strings, numbers, "
        "booleans and nulls, at most its [[event]]'s max_props_bytes as JSON (1024 unless "
        "the rules say).",
        examples=[{"sku": "chair-42", "price": 249.0}],
        extra={"refusal": f"must be a flat object of at most {MAX_PROPS} properties"},
    ),
]
EventId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="The sender's own id of this occurrence (an order id, say): a repeat "
        "with the same eventId is counted once, whatever its ts.",
        examples=["order-1042"],
        extra={"refusal": "must be 1-128 letters, digits, '_', '.', ':' or '-'"},
    ),
]


class Utm(Struct, forbid_unknown_fields=True):
    """The page's UTM parameters, by their own names."""

    utm_source: UtmValue | None = None
    utm_medium: UtmValue | None = None
    utm_campaign: UtmValue | None = None
    utm_term: UtmValue | None = None
    utm_content: UtmValue | None = None

    def given(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in self.__struct_fields__}
        return {name: value.strip() for name, value in values.items() if value and value.strip()}


class EventReport(Struct, rename="camel"):
    """One thing a visitor did. Empty strings read as absent, text is trimmed. A `track`
    or `goal` event is one of the site's own, by its declared `name`; a goal is a
    conversion, with its `value`."""

    site_id: SiteId
    session_id: SessionId
    type: EventType
    token: SessionToken | None = None
    path: (
        Annotated[
            str,
            Meta(
                max_length=512,
                pattern=r"^[ \t\n]*(?:/[^\x00-\x08\x0b-\x1f\x7f]*)?$",
                description="The page's path; '/' when absent.",
                extra={"refusal": "must start with '/' (at most 512 characters)"},
            ),
        ]
        | None
    ) = None
    url: Url | None = None
    referrer: Annotated[str, text(2048, "Where the visitor came from.")] | None = None
    title: Annotated[str, text(300, "The page's title.")] | None = None
    utm: Utm | None = None
    customer_id: Annotated[str, text(128, "The shop's id of this customer.")] | None = None
    customer_email: Email | None = None
    seconds_on_page: (
        Annotated[
            float,
            Meta(
                ge=0,
                le=MAX_SECONDS,
                description="Seconds the visitor has spent on this page (whole seconds kept).",
                extra={"refusal": f"must be a number from 0 to {MAX_SECONDS}"},
            ),
        ]
        | None
    ) = None
    ts: EventTime | None = None
    time_zone: TimeZoneName | None = None
    teaser_id: Annotated[str, text(64, "The teaser shown or clicked.")] | None = None
    value: (
        Annotated[
            float,
            Meta(
                ge=0,
                lt=1e12,
                description="A conversion's or a goal's value, in the shop's currency.",
                extra={"refusal": "must be a non-negative number"},
            ),
        ]
        | None
    ) = None
    name: Annotated[EventName, Meta(description="Required on track and goal.")] | None = None
    props: Props | None = None
    event_id: EventId | None = None

    def event(self) -> VisitorEvent:
        email = _given(self.customer_email)
        custom = self.type.value in CUSTOM_TYPES
        if custom and self.name is None:
            raise InvalidInput("name", f"is required on a {self.type.value} event")
        return VisitorEvent(
            site_id=self.site_id,
            session_id=self.session_id,
            type=self.type.value,
            path=_given(self.path) or "/",
            url=_given(self.url),
            referrer=_given(self.referrer),
            title=_given(self.title),
            utm=self.utm.given() if self.utm else {},
            customer_id=_given(self.customer_id),
            customer_email=email.lower() if email else None,
            seconds_on_page=None if self.seconds_on_page is None else int(self.seconds_on_page),
            ts=_real_time(self.ts),
            time_zone=_known_zone(_given(self.time_zone)),
            teaser_id=_given(self.teaser_id),
            value=self.value,
            # Only a custom event has a name and props; on the others they mean nothing.
            name=self.name if custom else None,
            props=(self.props or {}) if custom else {},
            event_id=self.event_id,
        )


class EventAccepted(Struct):
    score: Annotated[int, Meta(description="The session's engagement score now.")]
    triggered: Annotated[bool, Meta(description="Whether this event sent an automatic teaser.")]


def _given(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _real_time(ts: str | None) -> str | None:
    """The ts as given, once it names a day the calendar has."""
    if not ts:
        return None
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        raise InvalidInput("ts", EVENT_TIME_REFUSAL) from None
    return ts


def _known_zone(name: str | None) -> str | None:
    """A zone of the IANA database this server has, or None. Not the files beside them
    (`localtime` is this server's own zone, `Factory` means "not set")."""
    return name if name in _zones() else None


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime", "Factory"}
