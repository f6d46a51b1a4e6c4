"""Did the teasers cause conversions, and which wording works better? Sessions, not
teasers, are counted: each session that qualified for an automatic teaser in the period
belongs to the group of its first such decision — the wording it was sent, or the holdout
it was kept in (realtime/targeting/experiments.py assigns both by a hash, so the groups
are random samples of the same sessions). A session converted if, after entering its
group, it sent a `conversion` event in the period, or reached a goal within the
attribution window: one rule for every group, so they compare.

A session with no automatic decision but a manual teaser shown is the manual group: an
operator chose it, so it is reported with its rate and interval but no lift over the
holdout, which would claim a comparison the assignment never made."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from realtime.insight.lift import MIN_CONVERSIONS, MIN_SESSIONS, Interval, Lift, Rate, lift, wilson

CONFIDENCE = 0.95
RATE_INTERVAL = "wilson"
LIFT_INTERVAL = "newcombe_hybrid_score"


class Arm(StrEnum):
    HOLDOUT = "holdout"
    AUTO = "auto"  # every automatic teaser sent, whatever its template and wording
    VARIANT = "variant"  # one template's one wording
    MANUAL = "manual"


@dataclass(frozen=True)
class Entry:
    """When a session entered its group, and which."""

    at: int
    arm: Arm
    template: str | None = None
    variant: str | None = None

    @property
    def key(self) -> str:
        if self.arm is not Arm.VARIANT:
            return self.arm.value
        return f"{self.template}/{self.variant}" if self.variant else str(self.template)


def enter(decisions: Iterable[Any], manual_shown: Iterable[tuple[str, int]]) -> dict[str, Entry]:
    """Each session's group. `decisions`: the automatic decisions (rows with session_id,
    created_at, held_out, explanation) in time order; `manual_shown`: (session, when) of
    each manual teaser shown. A session's first decision places it."""
    entries: dict[str, Entry] = {}
    for row in decisions:
        if row.session_id in entries:
            continue
        trigger = (row.explanation or {}).get("trigger") or {}
        template, variant = trigger.get("template"), trigger.get("variant")
        if row.held_out:
            entries[row.session_id] = Entry(row.created_at, Arm.HOLDOUT, template, variant)
        else:
            entries[row.session_id] = Entry(row.created_at, Arm.VARIANT, template, variant)
    for session_id, at in sorted(manual_shown, key=lambda pair: pair[1]):
        entries.setdefault(session_id, Entry(at, Arm.MANUAL))
    return entries


def converted(entries: dict[str, Entry], rows: Iterable[Any], window_ms: int) -> set[str]:
    """The sessions that converted after entering their group (rows: the period's funnel
    events, with session_id, type, created_at)."""
    done: set[str] = set()
    for row in rows:
        entry = entries.get(row.session_id)
        if entry is None or row.session_id in done or row.created_at < entry.at:
            continue
        if row.type == "conversion" or (
            row.type == "goal" and row.created_at - entry.at <= window_ms
        ):
            done.add(row.session_id)
    return done


def report(entries: dict[str, Entry], conversions: set[str], window_minutes: int) -> dict[str, Any]:
    """The groups' rates with their intervals, and each automatic group's lift over the
    holdout, as /api/dashboard/conversions reports them."""
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    shapes: dict[str, Entry] = {}
    for session_id, entry in entries.items():
        hit = int(session_id in conversions)
        keys = [entry.key] + ([Arm.AUTO.value] if entry.arm is Arm.VARIANT else [])
        for key in keys:
            tallies[key][0] += 1
            tallies[key][1] += hit
        shapes.setdefault(entry.key, entry)
    holdout = _rate(tallies, Arm.HOLDOUT.value)
    variants = sorted(
        (key for key, entry in shapes.items() if entry.arm is Arm.VARIANT),
        key=lambda key: (-tallies[key][0], key),
    )
    return {
        "unit": "session",
        "confidence": CONFIDENCE,
        "rateInterval": RATE_INTERVAL,
        "liftInterval": LIFT_INTERVAL,
        "minimum": {"sessions": MIN_SESSIONS, "conversions": MIN_CONVERSIONS},
        "windowMinutes": window_minutes,
        "holdout": _group(Entry(0, Arm.HOLDOUT), holdout, None),
        "auto": _group(Entry(0, Arm.AUTO), _rate(tallies, Arm.AUTO.value), holdout),
        "variants": [_group(shapes[key], _rate(tallies, key), holdout) for key in variants],
        "manual": _group(Entry(0, Arm.MANUAL), _rate(tallies, Arm.MANUAL.value), None),
    }


def _rate(tallies: dict[str, list[int]], key: str) -> Rate:
    sessions, conversions = tallies.get(key, (0, 0))
    return Rate(sessions, conversions)


def _group(entry: Entry, rate: Rate, holdout: Rate | None) -> dict[str, Any]:
    compared = None if holdout is None else lift(rate, holdout)
    return {
        "key": entry.key,
        "arm": entry.arm.value,
        "template": entry.template,
        "variant": entry.variant,
        "sessions": rate.sessions,
        "converted": rate.conversions,
        "conversionRate": None if rate.value is None else round(rate.value, 4),
        "enoughData": rate.enough,
        "interval": _interval(wilson(rate)) if rate.enough else None,
        "lift": None if compared is None else _lift(compared),
    }


def _lift(found: Lift) -> dict[str, Any]:
    relative = None if found.relative is None else round(found.relative, 4)
    return {
        "absolute": round(found.absolute, 4),
        "relative": relative,
        "interval": _interval(found.interval),
    }


def _interval(interval: Interval) -> dict[str, float]:
    return {"low": round(interval.low, 4), "high": round(interval.high, 4)}
