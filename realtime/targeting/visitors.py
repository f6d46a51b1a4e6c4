"""What Teaser knows about one visitor session, built up event by event.

The score is a pure function of these facts, so it can always be explained. An event is
two things: an occurrence (a page viewed, a click), counted once however often it is
replayed, and facts (UTM, customer, time zone, time on page), which are learned every time
they come, since learning the same fact twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from realtime.targeting.events import VisitorEvent

MAX_PATHS = 100
MAX_FINGERPRINTS = 64
# Names are those a rules file declares (at most 64); the bound holds when the file changes.
MAX_CUSTOM_EVENTS = 64


@dataclass
class VisitorState:
    page_views: int = 0
    paths: list[str] = field(default_factory=list)
    current_path: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    customer_email: str | None = None
    # Whether the known customer came on an earlier visit (targeting/customers.py): None
    # until asked, which happens once, when the customer id is first known.
    returning_customer: bool | None = None
    longest_seconds_on_page: int = 0
    time_zone: str | None = None
    clicks: int = 0
    conversions: int = 0
    # How often the visitor did each custom event (track or goal), by its declared name.
    custom_events: dict[str, int] = field(default_factory=dict)
    auto_day: str = ""
    auto_sent_that_day: int = 0
    last_auto_at: int | None = None
    fingerprints: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> VisitorState:
        known = {
            name: value for name, value in (data or {}).items() if name in cls.__dataclass_fields__
        }
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def first_time(self, fingerprint: str) -> bool:
        """Remember an event's fingerprint; False if this exact event was seen already."""
        if fingerprint in self.fingerprints:
            return False
        self.fingerprints = [*self.fingerprints[-(MAX_FINGERPRINTS - 1) :], fingerprint]
        return True

    def visit(self, path: str) -> None:
        self.page_views += 1
        self.current_path = path
        if path not in self.paths and len(self.paths) < MAX_PATHS:
            self.paths.append(path)

    def learn(self, event: VisitorEvent) -> bool:
        """Take in the facts `event` carries; True if any of them was new. Idempotent, so a
        replay may always be learned from: only the occurrence is counted once."""
        before = (len(self.utm), self.customer_id, self.customer_email, self.time_zone)
        # First touch wins for attribution; later pages without UTM keep it.
        for key, value in event.utm.items():
            self.utm.setdefault(key, value)
        self.customer_id = self.customer_id or event.customer_id
        self.customer_email = self.customer_email or event.customer_email
        self.time_zone = event.time_zone or self.time_zone
        stayed = self.longest_seconds_on_page
        if event.type in STAYS and event.seconds_on_page is not None:
            self.longest_seconds_on_page = max(stayed, event.seconds_on_page)
        after = (len(self.utm), self.customer_id, self.customer_email, self.time_zone)
        return after != before or self.longest_seconds_on_page != stayed

    def count(self, event: VisitorEvent) -> None:
        """Count the occurrence `event` is: once per distinct event (see `first_time`)."""
        COUNTS[event.type](self, event)

    def apply(self, event: VisitorEvent) -> None:
        self.learn(event)
        self.count(event)

    def did(self, name: str) -> None:
        if name in self.custom_events or len(self.custom_events) < MAX_CUSTOM_EVENTS:
            self.custom_events[name] = self.custom_events.get(name, 0) + 1

    def count_auto_teaser(self, now_ms: int, day: str) -> None:
        if self.auto_day != day:
            self.auto_day, self.auto_sent_that_day = day, 0
        self.auto_sent_that_day += 1
        self.last_auto_at = now_ms

    def auto_sent_on(self, day: str) -> int:
        return self.auto_sent_that_day if self.auto_day == day else 0


def _visit(state: VisitorState, event: VisitorEvent) -> None:
    state.visit(event.path)


def _click(state: VisitorState, event: VisitorEvent) -> None:
    state.clicks += 1


def _convert(state: VisitorState, event: VisitorEvent) -> None:
    state.conversions += 1


def _track(state: VisitorState, event: VisitorEvent) -> None:
    state.did(event.name or "")


def _goal(state: VisitorState, event: VisitorEvent) -> None:
    state.did(event.name or "")
    state.conversions += 1


def _nothing(state: VisitorState, event: VisitorEvent) -> None:
    pass


# Events whose secondsOnPage says how long the visitor stayed (a fact: the longest is kept).
STAYS = frozenset({"time_on_page", "page_leave"})
COUNTS: dict[str, Callable[[VisitorState, VisitorEvent], None]] = {
    "page_view": _visit,
    "time_on_page": _nothing,
    "page_leave": _nothing,
    "teaser_shown": _nothing,
    "teaser_click": _click,
    "conversion": _convert,
    "track": _track,
    "goal": _goal,
}
