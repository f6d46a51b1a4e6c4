"""The webhook outbox: what happened, as rows written in the same transaction as the change
they report, and which sites want to hear of it (realtime/webhooks sends them)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.clock import iso_time
from realtime.platform.database import UPSERT_BUILDERS
from realtime.platform.tables import webhook_endpoints, webhook_outbox


class WebhookType(StrEnum):
    DELIVERED = "teaser.delivered"
    SHOWN = "teaser.shown"
    CLICKED = "teaser.clicked"
    CONVERTED = "teaser.converted"
    EXPIRED = "teaser.expired"
    AUTO_SENT = "auto_teaser.sent"
    TEST = "teaser.test"


# What an endpoint may subscribe to; teaser.test goes to the one endpoint that asked.
SUBSCRIBABLE = tuple(kind for kind in WebhookType if kind is not WebhookType.TEST)
# The visitor events that are reported, and as what.
REPORTED_EVENTS = {
    "teaser_shown": WebhookType.SHOWN,
    "teaser_click": WebhookType.CLICKED,
    "conversion": WebhookType.CONVERTED,
}
NO_SESSION = ""  # the lane of events that belong to no visitor session (teaser.test)


@dataclass(frozen=True)
class OutboxRow:
    event_id: str  # the webhook-id
    site_id: str
    type: WebhookType
    session_id: str
    payload: dict[str, Any]  # the event's `data`, in the wire's names
    created_at: int


def write_outbox(connection: Connection, rows: Sequence[OutboxRow]) -> None:
    """Insert the rows on this connection, inside the caller's transaction. A row whose
    event id is stored already is left as it is: a second try writes nothing twice."""
    if not rows:
        return
    values = [
        {
            "event_id": row.event_id,
            "site_id": row.site_id,
            "type": row.type.value,
            "session_id": row.session_id,
            "payload": row.payload,
            "created_at": row.created_at,
        }
        for row in rows
    ]
    statement = UPSERT_BUILDERS[connection.dialect.name](webhook_outbox).values(values)
    connection.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]))


class Subscriptions:
    """Which event types each site's enabled endpoints take, read for every site at once
    and kept for `ttl` seconds: a site without endpoints costs a dict lookup, and an
    endpoint added on another worker (or by the CLI) counts here within `ttl`."""

    def __init__(self, engine: AsyncEngine, *, ttl: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._by_site: dict[str, frozenset[str]] = {}
        self._until = 0.0
        # Bumped by forget(): a read that began before the change can't stand for after it.
        self._generation = 0
        self._loading: asyncio.Future[dict[str, frozenset[str]]] | None = None

    async def wants(self, site_id: str, kind: WebhookType) -> bool:
        return kind.value in (await self._current()).get(site_id, frozenset())

    async def any(self) -> bool:
        """Whether any site has an enabled endpoint."""
        return bool(await self._current())

    async def sites_wanting(self, kind: WebhookType) -> list[str]:
        return sorted(site for site, kinds in (await self._current()).items() if kind in kinds)

    def forget(self) -> None:
        """This worker changed an endpoint: read again at the next question, even while a
        read is under way (it may have begun before the change was committed, and kept for
        `ttl` it would hide the new endpoint: its first events were not written at all)."""
        self._until = 0.0
        self._generation += 1
        self._loading = None

    async def _current(self) -> dict[str, frozenset[str]]:
        if self._until > time.monotonic():
            return self._by_site
        # Callers that find it stale together share one read.
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load(self._generation))
            self._loading.add_done_callback(self._loaded)
        return await asyncio.shield(self._loading)

    def _loaded(self, loading: asyncio.Future[dict[str, frozenset[str]]]) -> None:
        if self._loading is loading:
            self._loading = None

    async def _load(self, generation: int) -> dict[str, frozenset[str]]:
        endpoints = webhook_endpoints.c
        statement = select(endpoints.site_id, endpoints.events).where(
            endpoints.disabled_at.is_(None), endpoints.removed_at.is_(None)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        by_site: dict[str, set[str]] = {}
        for site_id, events in rows:
            by_site.setdefault(site_id, set()).update(events or SUBSCRIBABLE)
        read = {site: frozenset(kinds) for site, kinds in by_site.items()}
        if generation == self._generation:  # nothing changed while reading: keep it
            self._by_site, self._until = read, time.monotonic() + self.ttl
        return read


# The events' `data`, built here, beside their names; realtime/contract/webhooks.py
# declares the same shapes for the documents (a test holds the two together).
def delivered(teaser: Mapping[Any, Any], via: str, now: int) -> OutboxRow:
    created = int(teaser["created_at"])
    return OutboxRow(
        f"evt_delivered_{teaser['id']}",
        teaser["site_id"],
        WebhookType.DELIVERED,
        teaser["session_id"],
        {
            "teaserId": teaser["id"],
            "sessionId": teaser["session_id"],
            "priority": teaser["priority"],
            "via": via,
            "createdAt": iso_time(created),
            "deliveredAt": iso_time(now),
            "latencyMs": max(0, now - created),
            "sessionSeq": teaser.get("session_seq"),
        },
        now,
    )


def expired(teaser: Mapping[Any, Any], now: int) -> OutboxRow:
    """Its id is the teaser's: a sweep that finds it again writes nothing new."""
    return OutboxRow(
        f"evt_expired_{teaser['id']}",
        teaser["site_id"],
        WebhookType.EXPIRED,
        teaser["session_id"],
        {
            "teaserId": teaser["id"],
            "sessionId": teaser["session_id"],
            "priority": teaser["priority"],
            "createdAt": iso_time(int(teaser["created_at"])),
            "expiredAt": iso_time(int(teaser["expires_at"])),
        },
        now,
    )


def visitor_event(
    kind: WebhookType,
    event_row: int,
    site_id: str,
    session_id: str,
    payload: Mapping[str, Any],
    now: int,
) -> OutboxRow:
    """teaser.shown, .clicked or .converted, from the stored visitor event `event_row`
    (its payload as stored, in the wire's names)."""
    data: dict[str, Any] = {
        "teaserId": payload.get("teaserId"),
        "sessionId": session_id,
        "path": payload.get("path"),
        "at": iso_time(now),
        "ts": payload.get("ts"),
    }
    if kind is WebhookType.CONVERTED:
        data |= {"value": payload.get("value"), "customerId": payload.get("customerId")}
    name = kind.value.removeprefix("teaser.")
    return OutboxRow(f"evt_{name}_{event_row}", site_id, kind, session_id, data, now)


def auto_teaser_sent(
    site_id: str, session_id: str, explanation: Mapping[str, Any], now: int
) -> OutboxRow:
    """An automatic teaser, with why: the rules and their points, the template."""
    trigger, score = explanation["trigger"], explanation["score"]
    return OutboxRow(
        f"evt_auto_{trigger['teaserId']}",
        site_id,
        WebhookType.AUTO_SENT,
        session_id,
        {
            "teaserId": trigger["teaserId"],
            "sessionId": session_id,
            "message": trigger["message"],
            "template": trigger["template"],
            "variant": trigger.get("variant"),
            "situation": trigger["situation"],
            "score": score["total"],
            "reasons": list(trigger.get("reasons", [])),
            "rules": list(score["rules"]),
            "at": iso_time(now),
        },
        now,
    )


def probe_event(site_id: str, number: int, now: int) -> OutboxRow:
    return OutboxRow(
        f"evt_test_{secrets.token_urlsafe(12)}",
        site_id,
        WebhookType.TEST,
        NO_SESSION,
        {"endpoint": number, "message": "A test event from Teaser: this endpoint is set up."},
        now,
    )
