"""Webhooks on the wire: what each event's POST carries (documented in /openapi.json's
`webhooks`), and the bodies and answers of /api/webhooks."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from realtime.contract.fields import WordingName
from realtime.contract.teasers import PriorityName, Transport
from realtime.platform import IsoTime, iso_time
from realtime.webhooks import DeliveryInfo, Endpoint

# The names an endpoint may subscribe to (realtime/platform/outbox.py's SUBSCRIBABLE).
EventName = Literal[
    "teaser.delivered",
    "teaser.shown",
    "teaser.clicked",
    "teaser.converted",
    "teaser.expired",
    "auto_teaser.sent",
]
TeaserId = Annotated[str, Meta(description="The teaser's id, as its send answered.")]
SessionName = Annotated[str, Meta(description="The visitor session.")]


# ---- what a receiver gets: {"type", "timestamp", "data"} -------------------------------


class TeaserDelivered(Struct, rename="camel"):
    teaser_id: TeaserId
    session_id: SessionName
    priority: PriorityName
    via: Annotated[Transport, Meta(description="websocket (acked by the widget) or poll.")]
    created_at: IsoTime
    delivered_at: IsoTime
    latency_ms: Annotated[int, Meta(description="From the send to the delivery.")]
    session_seq: Annotated[int | None, Meta(description="The teaser's number in its session.")]


class TeaserExpired(Struct, rename="camel"):
    teaser_id: TeaserId
    session_id: SessionName
    priority: PriorityName
    created_at: IsoTime
    expired_at: IsoTime


class TeaserSeen(Struct, rename="camel"):
    """The widget showed a teaser, or its visitor clicked it."""

    teaser_id: Annotated[str | None, Meta(description="The teaser, as the widget named it.")]
    session_id: SessionName
    path: Annotated[str | None, Meta(description="The page it happened on.")]
    at: Annotated[IsoTime, Meta(description="When Teaser recorded it.")]
    ts: Annotated[str | None, Meta(description="When it happened, as the browser said.")]


class TeaserConverted(Struct, rename="camel"):
    teaser_id: Annotated[
        str | None, Meta(description="The teaser credited, if the widget named one.")
    ]
    session_id: SessionName
    path: str | None
    at: IsoTime
    ts: str | None
    value: Annotated[float | None, Meta(description="The conversion's value, if given.")]
    customer_id: Annotated[str | None, Meta(description="The shop's id for the visitor.")]


class ScoreRule(Struct):
    """One rule's points towards the score."""

    rule: str
    label: str
    points: int
    detail: str


class AutoTeaserSent(Struct, rename="camel"):
    """Teaser sent a teaser by itself, and why."""

    teaser_id: TeaserId
    session_id: SessionName
    message: str
    template: Annotated[str, Meta(description="The template's id in the site's rules.")]
    variant: WordingName  # the one this session is assigned
    situation: str
    score: Annotated[int, Meta(description="The session's score when it was sent.")]
    reasons: Annotated[list[str], Meta(description="Why the visitor qualified.")]
    rules: Annotated[list[ScoreRule], Meta(description="The score's rules and their points.")]
    at: IsoTime


class EndpointTest(Struct):
    endpoint: Annotated[int, Meta(description="The endpoint's number within its site.")]
    message: str


Timestamp = Annotated[IsoTime, Meta(description="When the event happened (not the attempt).")]


class TeaserDeliveredEvent(Struct, tag_field="type", tag="teaser.delivered"):
    timestamp: Timestamp
    data: TeaserDelivered


class TeaserShownEvent(Struct, tag_field="type", tag="teaser.shown"):
    timestamp: Timestamp
    data: TeaserSeen


class TeaserClickedEvent(Struct, tag_field="type", tag="teaser.clicked"):
    timestamp: Timestamp
    data: TeaserSeen


class TeaserConvertedEvent(Struct, tag_field="type", tag="teaser.converted"):
    timestamp: Timestamp
    data: TeaserConverted


class TeaserExpiredEvent(Struct, tag_field="type", tag="teaser.expired"):
    timestamp: Timestamp
    data: TeaserExpired


class AutoTeaserSentEvent(Struct, tag_field="type", tag="auto_teaser.sent"):
    timestamp: Timestamp
    data: AutoTeaserSent


class EndpointTestEvent(Struct, tag_field="type", tag="teaser.test"):
    timestamp: Timestamp
    data: EndpointTest


WebhookEvent = (
    TeaserDeliveredEvent
    | TeaserShownEvent
    | TeaserClickedEvent
    | TeaserConvertedEvent
    | TeaserExpiredEvent
    | AutoTeaserSentEvent
    | EndpointTestEvent
)
# By event name: what /openapi.json's `webhooks` documents, one entry each.
WEBHOOK_EVENTS: dict[str, type[Struct]] = {
    "teaser.delivered": TeaserDeliveredEvent,
    "teaser.shown": TeaserShownEvent,
    "teaser.clicked": TeaserClickedEvent,
    "teaser.converted": TeaserConvertedEvent,
    "teaser.expired": TeaserExpiredEvent,
    "auto_teaser.sent": AutoTeaserSentEvent,
    "teaser.test": EndpointTestEvent,
}


# ---- /api/webhooks -------------------------------------------------------------------


class WebhookRequest(Struct, rename="camel", forbid_unknown_fields=True):
    """A new endpoint."""

    url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=2048,
            description="Where to POST: https:// (http:// too outside production), never a "
            "loopback or private address unless TEASER_WEBHOOK_ALLOW_PRIVATE=true.",
            examples=["https://shop.example/hooks/teaser"],
            extra={"refusal": "must be a URL of at most 2048 characters"},
        ),
    ]
    events: Annotated[
        list[EventName],
        Meta(
            max_length=6,
            description="The events it takes; empty or absent: all of them.",
            extra={"refusal": "must be a list of event names, like teaser.delivered"},
        ),
    ] = []


State = Literal["enabled", "failing", "disabled"]


class WebhookEndpoint(Struct, rename="camel"):
    number: Annotated[int, Meta(description="1, 2, 3… within the site; never reused.")]
    url: str
    events: Annotated[list[str], Meta(description="Empty: every event.")]
    state: Annotated[State, Meta(description="failing: its last attempt failed.")]
    created_at: IsoTime
    failing_since: Annotated[
        IsoTime | None, Meta(description="Since the first failure after the last success.")
    ]
    disabled_at: IsoTime | None
    disabled_reason: Annotated[str | None, Meta(description="Why it was disabled.")]
    last_delivered_at: IsoTime | None

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookEndpoint:
        return cls(
            number=endpoint.number,
            url=endpoint.url,
            events=list(endpoint.events),
            state=endpoint.state,  # type: ignore[arg-type]
            created_at=iso_time(endpoint.created_at),
            failing_since=_time(endpoint.failing_since),
            disabled_at=_time(endpoint.disabled_at),
            disabled_reason=endpoint.disabled_reason,
            last_delivered_at=_time(endpoint.last_delivered_at),
        )


class WebhookEndpoints(Struct):
    endpoints: list[WebhookEndpoint]


class WebhookCreated(Struct):
    endpoint: WebhookEndpoint
    secret: Annotated[
        str,
        Meta(
            description="The signing secret (whsec_…), shown this once: verify each POST "
            "with it (Standard Webhooks).",
        ),
    ]


class WebhookSecret(Struct, rename="camel"):
    number: int
    secret: Annotated[str, Meta(description="The new signing secret, shown this once.")]
    previous_valid_until: Annotated[
        IsoTime, Meta(description="Until then the previous secret signs each POST too.")
    ]


class WebhookTestQueued(Struct, rename="camel"):
    webhook_id: Annotated[str, Meta(description="The teaser.test event's webhook-id.")]


class WebhookDelivery(Struct, rename="camel"):
    id: Annotated[int, Meta(description="Replay it by this id.")]
    webhook_id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: Annotated[int | None, Meta(description="The last attempt's HTTP status.")]
    latency_ms: Annotated[int | None, Meta(description="The last attempt's time to answer.")]
    error: Annotated[str | None, Meta(description="Why the last attempt failed.")]
    response: Annotated[str | None, Meta(description="The start of the last answer's body.")]
    created_at: IsoTime
    last_attempt_at: IsoTime | None
    next_attempt_at: Annotated[IsoTime | None, Meta(description="While pending.")]
    delivered_at: IsoTime | None

    @classmethod
    def of(cls, delivery: DeliveryInfo) -> WebhookDelivery:
        return cls(
            id=delivery.id,
            webhook_id=delivery.event_id,
            type=delivery.type,
            status=delivery.status,  # type: ignore[arg-type]
            attempts=delivery.attempts,
            status_code=delivery.status_code,
            latency_ms=delivery.latency_ms,
            error=delivery.error,
            response=delivery.response,
            created_at=iso_time(delivery.created_at),
            last_attempt_at=_time(delivery.last_attempt_at),
            next_attempt_at=_time(delivery.next_attempt_at),
            delivered_at=_time(delivery.delivered_at),
        )


class WebhookDeliveries(Struct):
    deliveries: Annotated[list[WebhookDelivery], Meta(description="Newest event first.")]


def _time(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_time(epoch_ms)
