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


EVENT_TYPES = frozenset(kind.value for kind in EventType)


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
