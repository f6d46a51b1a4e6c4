"""A visitor event: what the widget saw its visitor do (its wire form is in the contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    TIME_ON_PAGE = "time_on_page"
    PAGE_LEAVE = "page_leave"
    TEASER_SHOWN = "teaser_shown"
    TEASER_CLICK = "teaser_click"
    CONVERSION = "conversion"
    # A shop's own events, by the name its rules file declares ([[event]]); a goal is one
    # that counts as a conversion, with its value.
    TRACK = "track"
    GOAL = "goal"


EVENT_TYPES = frozenset(kind.value for kind in EventType)
CUSTOM_TYPES = frozenset({EventType.TRACK.value, EventType.GOAL.value})


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
    # Only on a track or goal event: its declared name, its properties, and the sender's
    # own id of this occurrence (a retry with the same id is the same occurrence).
    name: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None

    @property
    def custom(self) -> bool:
        return self.type in CUSTOM_TYPES

    @property
    def fingerprint(self) -> str:
        if self.event_id is not None:
            return f"{self.type}|{self.name}|id:{self.event_id}"
        built_in = f"{self.type}|{self.path}|{self.ts}|{self.seconds_on_page}|{self.teaser_id}"
        return built_in if self.name is None else f"{built_in}|{self.name}"

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
            **({"name": self.name, "props": self.props} if self.custom else {}),
            **({"eventId": self.event_id} if self.event_id is not None else {}),
        }
