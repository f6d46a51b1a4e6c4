"""The dashboard's APIs: which slice of the feed is asked for, and what comes back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from realtime.contract.fields import WordingName, text
from realtime.insight import MAX_PAGE, PERIODS_MS, FeedFilter, View
from realtime.platform import InvalidInput, IsoTime
from realtime.targeting import Wording

MAX_SEARCH = 200
MAX_EPOCH_DIGITS = 15  # epoch milliseconds until the year 33658; more is not a time
Period = Literal["1h", "24h", "7d", "30d", "all"]
# Read by datetime.fromisoformat after decoding; what the schema promises it reads.
Moment = Annotated[
    str,
    Meta(
        max_length=40,
        description="Epoch milliseconds, or an RFC 3339 time or date (UTC unless it says).",
        extra_json_schema={
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{1,15}$"},
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ]
        },
    ),
]
Explanation = Annotated[
    dict[str, Any],
    Meta(
        description="Why the score is what it is (score: total, rules; since this event was "
        "explained so: previous, and the rules it added and removed), and why a trigger fired."
    ),
]
Priority = Literal["manual", "auto"]
Status = Literal["pending", "delivered", "expired"]
Transport = Literal["websocket", "poll"]


class ViewQuery(Struct, rename="camel"):
    """The slice of the feed an operator looks at: a filter, a search, a period. Absent
    values are UNSET, not None: a query string has no null, and `?period=null` is no period."""

    filter: Annotated[FeedFilter, Meta(description="all, or only AI-triggered, or high scores")] = (
        FeedFilter.ALL
    )
    q: (
        Annotated[str, text(MAX_SEARCH, "Search in paths, titles, messages and ids.")] | UnsetType
    ) = UNSET
    period: Annotated[Period, Meta(description="Overrides since.")] | UnsetType = UNSET
    since: Moment | UnsetType = UNSET
    until: Moment | UnsetType = UNSET

    def view(self, now: int) -> View:
        since = _time(self.since, "since")
        if self.period and self.period != "all":
            since = now - PERIODS_MS[self.period]
        return View(self.filter, (self.q or "").strip(), since, _time(self.until, "until"))


class FeedQuery(ViewQuery):
    before: (
        Annotated[
            str,
            Meta(
                max_length=64,
                pattern=r"^\d{1,15}-[0-2]-\d{1,18}$",
                description="The `next` of the page before.",
                extra={"refusal": "must be a cursor from an earlier page's 'next'"},
            ),
        ]
        | UnsetType
    ) = UNSET
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Items per page.")] = 100


class ExportQuery(ViewQuery):
    format: Literal["json", "csv"] = "json"


def _time(value: str | UnsetType, field: str) -> int | None:
    if not value:
        return None
    if value.isascii() and value.isdigit() and len(value) <= MAX_EPOCH_DIGITS:
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise InvalidInput(field, "must be epoch milliseconds or an ISO 8601 time") from None


class MessageCounts(Struct, rename="camel"):
    sent: int
    delivered: int
    delivered_websocket: int
    delivered_poll: int
    pending: int
    expired: int


class Stats(Struct, rename="camel"):
    """The metric cards."""

    total_events: int
    ai_triggers: int
    active_sessions: int
    average_score: float | None
    online_now: int
    messages: MessageCounts


class Visitor(Struct, rename="camel"):
    """What the row's session is known by now (first-touch UTM, customer, time zone), from
    whichever event told it; all null for a session Teaser holds no state for."""

    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    customer_id: str | None
    customer_email: str | None
    time_zone: str | None
    first_seen: IsoTime | None


class EventItem(Struct, rename="camel", tag_field="kind", tag="event", kw_only=True):
    key: str
    cursor: str
    id: int
    at: IsoTime
    session_id: str
    type: str
    path: str | None
    url: str | None
    title: str | None
    referrer: str | None
    utm: dict[str, str]
    utm_source: str | None
    utm_campaign: str | None
    customer_id: str | None
    customer_email: str | None
    seconds_on_page: int | None
    teaser_id: str | None
    value: float | None
    name: Annotated[str | None, Meta(description="A track or goal event's name.")]
    time_zone: str | None
    score: int
    ai_triggered: bool
    triggered_teaser_id: str | None
    variant: WordingName  # an automatic decision's (sent, or held out); else null
    held_out: Annotated[
        bool,
        Meta(description="The trigger fired for a session in the holdout: nothing was sent."),
    ]
    explanation: Explanation
    visitor: Annotated[
        Visitor, Meta(description="The session's facts now; the fields above are this event's own.")
    ]


class TeaserSentItem(Struct, rename="camel", tag_field="kind", tag="teaser_sent", kw_only=True):
    key: str
    cursor: str
    id: str
    at: IsoTime
    session_id: str
    customer_id: str | None
    message: str
    priority: Priority
    created_at: IsoTime
    expires_at: IsoTime
    status: Status
    delivered_via: Transport | None
    delivered_at: IsoTime | None
    visitor: Visitor


class TeaserDeliveredItem(TeaserSentItem, tag="teaser_delivered"):
    pass


FeedItem = EventItem | TeaserSentItem | TeaserDeliveredItem


class FeedPage(Struct):
    events: Annotated[list[FeedItem], Meta(description="Newest first.")]
    next: Annotated[str | None, Meta(description="`before` for the next page; null at the end.")]


class RuleChange(Struct):
    """One rule's part in a change of score (points may be less than the rule gives when
    it replaced a lower tier of itself: then they are the difference)."""

    rule: str
    label: str
    points: int
    detail: str


class JourneyEvent(Struct, rename="camel", tag_field="kind", tag="event", kw_only=True):
    at: IsoTime
    id: int
    type: str
    path: str | None
    seconds_on_page: int | None
    teaser_id: str | None
    value: float | None
    name: Annotated[str | None, Meta(description="A track or goal event's name.")]
    score: int
    score_change: int
    rules: Annotated[list[dict[str, Any]], Meta(description="Every rule the score holds after it.")]
    added: Annotated[list[RuleChange], Meta(description="The rules this event added.")]
    trigger: dict[str, Any] | None
    ai_triggered: bool
    # Only on a page view: seconds spent on it, or null while unknown.
    time_on_page: int | UnsetType | None = UNSET


class JourneyTeaserSent(Struct, rename="camel", tag_field="kind", tag="teaser_sent", kw_only=True):
    at: IsoTime
    id: str
    message: str
    priority: Priority
    status: Status
    expires_at: IsoTime
    delivered_via: Transport | None
    delivered_at: IsoTime | None
    shown: bool
    clicked: bool
    converted: bool


class JourneyTeaserDelivered(
    Struct, rename="camel", tag_field="kind", tag="teaser_delivered", kw_only=True
):
    at: IsoTime
    id: str
    via: Transport | None


class Journey(Struct, rename="camel"):
    """One session's story: who, where from, and every step in order."""

    session_id: str
    customer_id: str | None
    customer_email: str | None
    utm: dict[str, str]
    page_views: int
    score: int
    first_seen: IsoTime | None
    last_seen: IsoTime | None
    online: bool
    transport: Transport | None
    last_presence: IsoTime | None
    converted: bool
    timeline: list[JourneyEvent | JourneyTeaserSent | JourneyTeaserDelivered]


class Funnel(Struct, rename="camel", omit_defaults=True):
    shown: int
    clicked: int
    converted: int
    click_rate: float
    conversion_rate: float
    key: str | None = None
    value: Annotated[
        float,
        Meta(
            description="The summed value of the conversions and goals credited to these "
            "teasers; absent when 0."
        ),
    ] = 0.0
    events: Annotated[
        dict[str, int],
        Meta(
            description="By custom event (track or goal) name: how many of these teasers "
            "were followed by it within the attribution window; absent when none."
        ),
    ] = {}


class FunnelPoint(Struct):
    """The teasers first shown within one bucket, and how many of them were then clicked
    and converted."""

    start: IsoTime
    shown: int
    clicked: int
    converted: int


class FunnelOverTime(Struct):
    bucket: Annotated[
        Literal["hour", "day"], Meta(description="UTC hours up to a day's period; else days.")
    ]
    points: Annotated[
        list[FunnelPoint],
        Meta(description="Oldest first, every bucket of the period, at most 400.", max_length=400),
    ]


class GoalTotal(Struct, rename="camel"):
    """One goal's occurrences in the period, and those credited to a teaser."""

    key: Annotated[str, Meta(description="The goal's name.")]
    count: int
    value: float
    attributed: int
    attributed_value: float


class Attribution(Struct, rename="camel"):
    """How goals were credited: to the teaser the session was shown last, if within
    windowMinutes before the goal (the site's rules, [attribution] window_minutes). A
    `conversion` event keeps its own rule: the teaser it names, else the last shown."""

    model: Literal["last_shown_within"]
    window_minutes: int


class Bounds(Struct):
    low: float
    high: float


class GroupLift(Struct):
    absolute: Annotated[
        float, Meta(description="The group's rate minus the holdout's: 0.02 is 2 points.")
    ]
    relative: Annotated[
        float | None, Meta(description="absolute over the holdout's rate; null when that is 0.")
    ]
    interval: Annotated[
        Bounds, Meta(description="95 % interval of absolute: Newcombe's hybrid score interval.")
    ]


class ExperimentGroup(Struct, rename="camel"):
    """Sessions in one group and how many converted after entering it."""

    key: Annotated[
        str, Meta(description="'holdout', 'auto', 'manual', or a template's 'id/variant'.")
    ]
    arm: Literal["holdout", "auto", "variant", "manual"]
    template: str | None
    variant: WordingName
    sessions: int
    converted: int
    conversion_rate: Annotated[float | None, Meta(description="Null for no sessions.")]
    enough_data: Annotated[
        bool, Meta(description="At least minimum.sessions sessions and minimum.conversions.")
    ]
    interval: Annotated[
        Bounds | None,
        Meta(description="95 % Wilson score interval of the rate; null: not enough data yet."),
    ]
    lift: Annotated[
        GroupLift | None,
        Meta(
            description="Over the holdout; null when either lacks the minimum sample, and "
            "always for the holdout and the manual group (an operator's choice is no random "
            "sample)."
        ),
    ]


class ExperimentMinimum(Struct):
    sessions: int
    conversions: int


class Experiment(Struct, rename="camel"):
    """Variants and the holdout, counted by session: each session that qualified for an
    automatic teaser is in the group of its first decision in the period (the wording it
    was sent, or the holdout); it converted if a conversion event followed, or a goal within
    windowMinutes. Sessions with no automatic decision but a manual teaser shown are the
    manual group."""

    unit: Literal["session"]
    confidence: float
    rate_interval: Literal["wilson"]
    lift_interval: Literal["newcombe_hybrid_score"]
    minimum: ExperimentMinimum
    window_minutes: int
    holdout: ExperimentGroup
    auto: Annotated[ExperimentGroup, Meta(description="Every session sent an automatic teaser.")]
    variants: Annotated[
        list[ExperimentGroup], Meta(description="By template and wording, most sessions first.")
    ]
    manual: ExperimentGroup


class ConversionReport(Struct, rename="camel"):
    """Shown → clicked → converted, in all, by trigger, template and source, and over time;
    the goals reached, and how they were credited."""

    since: IsoTime
    until: IsoTime
    totals: Funnel
    by_trigger: list[Funnel]
    by_template: list[Funnel]
    by_source: list[Funnel]
    over_time: FunnelOverTime
    goals: Annotated[list[GoalTotal], Meta(description="Most reached first.")]
    attribution: Attribution
    experiment: Experiment


class TemplateWording(Struct):
    """One wording of one template, filled in for the session."""

    template: Annotated[str, Meta(description="The template's id.")]
    variant: WordingName
    text: Annotated[
        str | None,
        Meta(
            description="Rendered with the session's details, else the variant's fallback, "
            "else the template's; null when none renders for this session."
        ),
    ]
    source: Annotated[str, Meta(description="The wording as the rules file has it.")]


class WordingChoices(Struct):
    """Every template's every wording, in the rules file's order, for the dashboard's
    compose to start from. A session not stored yet gets them with no details filled in."""

    wordings: list[TemplateWording]

    @classmethod
    def of(cls, found: Sequence[Wording]) -> WordingChoices:
        return cls([TemplateWording(w.template, w.variant, w.text, w.source) for w in found])
