"""A visitor event as the widget reports it, checked field by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from realtime.platform.errors import InvalidInput
from realtime.platform.ids import EMAIL, FORBIDDEN_CHARACTERS, check_session_id, check_site_id

EVENT_TYPES = frozenset(
    {"page_view", "time_on_page", "page_leave", "teaser_shown", "teaser_click", "conversion"}
)
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
LIMITS = {"url": 2048, "path": 512, "referrer": 2048, "title": 300, "customerId": 128,
          "customerEmail": 254, "ts": 40, "timeZone": 64, "teaserId": 64}  # fmt: skip
MAX_UTM_VALUE = 200
MAX_SECONDS = 86_400


@dataclass(frozen=True)
class VisitorEvent:
    site_id: str
    session_id: str
    type: str
    path: str
    url: str | None = None
    referrer: str | None = None
    title: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    customer_email: str | None = None
    seconds_on_page: int | None = None
    ts: str | None = None
    time_zone: str | None = None
    teaser_id: str | None = None
    value: float | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.type}|{self.path}|{self.ts}|{self.seconds_on_page}|{self.teaser_id}"

    def payload(self) -> dict[str, Any]:
        """What is stored and shown on the dashboard, in the wire's names."""
        return {
            "type": self.type,
            "url": self.url,
            "path": self.path,
            "referrer": self.referrer,
            "title": self.title,
            "utm": self.utm,
            "customerId": self.customer_id,
            "customerEmail": self.customer_email,
            "secondsOnPage": self.seconds_on_page,
            "ts": self.ts,
            "timeZone": self.time_zone,
            "teaserId": self.teaser_id,
            "value": self.value,
        }


def parse_event(body: Any) -> VisitorEvent:
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:  # {} and [] are unhashable
        raise InvalidInput("type", f"must be one of {', '.join(sorted(EVENT_TYPES))}")
    email = _text(body, "customerEmail")
    if email is not None and not EMAIL.fullmatch(email):
        raise InvalidInput("customerEmail", "is not an e-mail address")
    return VisitorEvent(
        site_id=check_site_id(body.get("siteId")),
        session_id=check_session_id(body.get("sessionId")),
        type=str(kind),
        path=_path(body),
        url=_text(body, "url"),
        referrer=_text(body, "referrer"),
        title=_text(body, "title"),
        utm=_utm(body.get("utm")),
        customer_id=_text(body, "customerId"),
        customer_email=email.lower() if email else None,
        seconds_on_page=_seconds(body.get("secondsOnPage")),
        ts=_text(body, "ts"),
        time_zone=_zone(_text(body, "timeZone")),
        teaser_id=_text(body, "teaserId"),
        value=_value(body.get("value")),
    )


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(key, "must be a string")
    if len(value) > LIMITS[key]:
        raise InvalidInput(key, f"must be at most {LIMITS[key]} characters")
    if FORBIDDEN_CHARACTERS.search(value):
        raise InvalidInput(key, "must not contain control characters")
    return value.strip() or None


def _path(body: dict[str, Any]) -> str:
    path = _text(body, "path") or "/"
    if not path.startswith("/"):
        raise InvalidInput("path", "must start with '/'")
    return path


def _utm(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("utm", "must be an object of utm_* strings")
    utm = {}
    for key, item in value.items():
        if key not in UTM_KEYS:
            raise InvalidInput(f"utm.{key}", f"is not one of {', '.join(UTM_KEYS)}")
        if (
            not isinstance(item, str)
            or len(item) > MAX_UTM_VALUE
            or FORBIDDEN_CHARACTERS.search(item)
        ):
            raise InvalidInput(
                f"utm.{key}", f"must be a string of at most {MAX_UTM_VALUE} characters"
            )
        if item.strip():
            utm[key] = item.strip()
    return utm


def _seconds(value: Any) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_SECONDS
    ):
        raise InvalidInput("secondsOnPage", f"must be a number from 0 to {MAX_SECONDS}")
    return int(value)


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        raise InvalidInput("value", "must be a non-negative number")
    return float(value)


def _zone(name: str | None) -> str | None:
    """A zone this server knows, or None: a browser may know zones our tz data lacks."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name
