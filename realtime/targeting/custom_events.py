"""Custom events (track and goal) are taken only as a site's rules declare them: a name
its [[event]] tables list, props within their size, at most so many a minute per session."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from realtime.platform.errors import Forbidden, InvalidInput, RateLimited
from realtime.platform.ratelimit import RateLimiter
from realtime.targeting.events import VisitorEvent
from realtime.targeting.rules import CustomEvent, RuleSet


def props_bytes(event: VisitorEvent) -> int:
    """The size of the event's props as JSON, as the limit counts it."""
    return len(msgspec.json.encode(event.props)) if event.props else 0


class CustomEventGate:
    """Refuses a custom event its site's rules do not take, before anything is stored."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # One bucket per (site, session, name), in a limiter per rate: rates are few (the
        # values rules files give), while declarations are many and change with the files.
        self._limiters: dict[int, RateLimiter] = {}

    def admit(self, event: VisitorEvent, rules: RuleSet, *, from_server: bool) -> None:
        if not event.custom:
            return
        declared = _declaration(event, rules)
        size = props_bytes(event)
        if size > declared.max_props_bytes:
            raise InvalidInput(
                "props",
                f"is {size} bytes as JSON; {declared.name} takes at most "
                f"{declared.max_props_bytes} (max_props_bytes in the site's rules)",
            )
        if declared.server_only and not from_server:
            raise Forbidden(
                f"'{declared.name}' is taken only from the shop's backend, with the site's "
                "key (POST /api/events/server)",
                code="server_only_event",
            )
        self._take(event, declared)

    def _take(self, event: VisitorEvent, declared: CustomEvent) -> None:
        limiter = self._limiters.get(declared.max_per_minute)
        if limiter is None:
            limiter = self._limiters[declared.max_per_minute] = RateLimiter(
                "events", declared.max_per_minute / 60, declared.max_per_minute, self.clock
            )
        try:
            limiter.take(f"{event.site_id}\n{event.session_id}\n{declared.name}")
        except RateLimited as exc:
            raise RateLimited(
                f"too many '{declared.name}' events for this session (the site's rules take "
                f"{declared.max_per_minute} a minute); slow down",
                retry_after=exc.retry_after,
            ) from None


MAX_NAMES_SAID = 10


def _declaration(event: VisitorEvent, rules: RuleSet) -> CustomEvent:
    declared = rules.events.get(event.name or "")
    if declared is None:
        names = sorted(rules.events)
        said = ", ".join(names[:MAX_NAMES_SAID]) + (", …" if len(names) > MAX_NAMES_SAID else "")
        raise InvalidInput(
            "name",
            f"'{event.name}' is not an event this site declares (its rules declare "
            f'{said or "none"}; add [[event]] name = "{event.name}")',
        )
    return declared
