"""What Teaser knows about one visitor session, built up event by event.

The score is a pure function of these facts, so it can always be explained and a replayed
event (same type, page and timestamp) changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from realtime.targeting.events import VisitorEvent

MAX_PATHS = 100
MAX_FINGERPRINTS = 64


@dataclass
class VisitorState:
    page_views: int = 0
    paths: list[str] = field(default_factory=list)
    current_path: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    customer_email: str | None = None
    longest_seconds_on_page: int = 0
    time_zone: str | None = None
    clicks: int = 0
    conversions: int = 0
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

    def learn(self, utm: dict[str, str], customer_id: str | None, email: str | None) -> None:
        # First touch wins for attribution; later pages without UTM keep it.
        for key, value in utm.items():
            self.utm.setdefault(key, value)
        self.customer_id = self.customer_id or customer_id
        self.customer_email = self.customer_email or email

    def stayed(self, seconds: int) -> None:
        self.longest_seconds_on_page = max(self.longest_seconds_on_page, seconds)

    def apply(self, event: VisitorEvent) -> None:
        self.learn(event.utm, event.customer_id, event.customer_email)
        self.time_zone = event.time_zone or self.time_zone
        EFFECTS[event.type](self, event)

    def count_auto_teaser(self, now_ms: int, day: str) -> None:
        if self.auto_day != day:
            self.auto_day, self.auto_sent_that_day = day, 0
        self.auto_sent_that_day += 1
        self.last_auto_at = now_ms

    def auto_sent_on(self, day: str) -> int:
        return self.auto_sent_that_day if self.auto_day == day else 0


def _visit(state: VisitorState, event: VisitorEvent) -> None:
    state.visit(event.path)


def _stay(state: VisitorState, event: VisitorEvent) -> None:
    if event.seconds_on_page is not None:
        state.stayed(event.seconds_on_page)


def _click(state: VisitorState, event: VisitorEvent) -> None:
    state.clicks += 1


def _convert(state: VisitorState, event: VisitorEvent) -> None:
    state.conversions += 1


def _nothing(state: VisitorState, event: VisitorEvent) -> None:
    pass


EFFECTS: dict[str, Callable[[VisitorState, VisitorEvent], None]] = {
    "page_view": _visit,
    "time_on_page": _stay,
    "page_leave": _stay,
    "teaser_shown": _nothing,
    "teaser_click": _click,
    "conversion": _convert,
}
