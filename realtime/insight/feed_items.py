"""A feed row as every reader shows it (the API, the live socket, the export): its kind,
its cursor, and its JSON, built from the database row the feed's queries return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sqlalchemy.engine import Row

from realtime.platform.clock import iso_time
from realtime.platform.errors import InvalidInput


class Kind(IntEnum):
    """A feed item's kind; the value orders items of the same millisecond (send before
    delivery, both after the event that caused them)."""

    EVENT = 0
    TEASER_SENT = 1
    TEASER_DELIVERED = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a feed page ends: (time, kind, row id), compared newest first."""

    at: int
    kind: int
    ref: int

    def encode(self) -> str:
        return f"{self.at}-{self.kind}-{self.ref}"

    @classmethod
    def parse(cls, raw: str, field: str = "before") -> Cursor:
        try:
            at, kind, ref = (int(part) for part in raw.split("-"))
            return cls(at, Kind(kind), ref)
        except ValueError:
            raise InvalidInput(field, "must be a cursor from an earlier page's 'next'") from None


@dataclass(frozen=True)
class Refs:
    """Rows a batch of live activity names, to be read back in full."""

    events: list[int] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)


def sort_key(item: dict[str, Any]) -> Cursor:
    return Cursor.parse(item["cursor"])


def feed_item(kind: Kind, row: Row[Any], now: int) -> dict[str, Any]:
    data = row._mapping
    if kind is Kind.EVENT:
        return event_item(data)
    return teaser_item(kind, data, now)


def event_item(data: Any) -> dict[str, Any]:
    payload: dict[str, Any] = data["payload"] or {}
    explanation: dict[str, Any] = data["explanation"] or {}
    utm: dict[str, str] = payload.get("utm") or {}
    trigger = explanation.get("trigger") or {}
    return {
        "kind": Kind.EVENT.label,
        "key": f"event:{data['id']}",
        "cursor": Cursor(data["created_at"], Kind.EVENT, data["id"]).encode(),
        "id": data["id"],
        "at": iso_time(data["created_at"]),
        "sessionId": data["session_id"],
        "type": data["type"],
        "path": payload.get("path"),
        "url": payload.get("url"),
        "title": payload.get("title"),
        "referrer": payload.get("referrer"),
        "utm": utm,
        "utmSource": utm.get("utm_source"),
        "utmCampaign": utm.get("utm_campaign"),
        "customerId": payload.get("customerId"),
        "customerEmail": payload.get("customerEmail"),
        "secondsOnPage": payload.get("secondsOnPage"),
        "teaserId": payload.get("teaserId"),
        "value": payload.get("value"),
        "name": payload.get("name"),  # a track or goal event's own name
        "timeZone": payload.get("timeZone"),
        "score": data["score"],
        "aiTriggered": bool(data["ai_triggered"]),
        "triggeredTeaserId": trigger.get("teaserId") if data["ai_triggered"] else None,
        # An automatic decision's group: the wording it was sent, or held out.
        "variant": trigger.get("variant") if data["ai_triggered"] or data["held_out"] else None,
        "heldOut": bool(data["held_out"]),
        "explanation": explanation,
        "visitor": visitor_facts(data),
    }


def teaser_item(kind: Kind, data: Any, now: int) -> dict[str, Any]:
    consumed, expires = data["consumed_at"], data["expires_at"]
    status = "delivered" if consumed is not None else "pending" if now < expires else "expired"
    at = data["created_at"] if kind is Kind.TEASER_SENT else consumed
    return {
        "kind": kind.label,
        "key": f"{kind.label}:{data['id']}",
        "cursor": Cursor(at, kind, data["seq"]).encode(),
        "id": data["id"],
        "at": iso_time(at),
        "sessionId": data["session_id"],
        "customerId": data["visitor_customer_id"],
        "message": data["message"],
        "priority": data["priority"],
        "createdAt": iso_time(data["created_at"]),
        "expiresAt": iso_time(expires),
        "status": status,
        "deliveredVia": data["delivered_via"],
        "deliveredAt": None if consumed is None else iso_time(consumed),
        "visitor": visitor_facts(data),
    }


def visitor_facts(data: Any) -> dict[str, Any]:
    """The session's facts as _with_facts reads them; all null for a session with no row."""
    first_seen = data["visitor_first_seen"]
    return {
        "utmSource": data["visitor_utm_source"],
        "utmMedium": data["visitor_utm_medium"],
        "utmCampaign": data["visitor_utm_campaign"],
        "customerId": data["visitor_customer_id"],
        "customerEmail": data["visitor_customer_email"],
        "timeZone": data["visitor_time_zone"],
        "firstSeen": None if first_seen is None else iso_time(first_seen),
    }


def refs_of(activity: Sequence[dict[str, Any]]) -> Refs:
    """Which rows a batch from realtime.fanout.activity names (see ActivityFeed.announce)."""
    refs = Refs()
    for entry in activity:
        kind, ref = entry.get("kind"), entry.get("id")
        if kind == "event" and isinstance(ref, int):
            refs.events.append(ref)
        elif kind == "teaser_sent" and isinstance(ref, str):
            refs.sent.append(ref)
        elif kind == "teaser_delivered" and isinstance(ref, str):
            refs.delivered.append(ref)
    return refs
