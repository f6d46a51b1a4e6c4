"""The shape of a rules file, declared once: decoding, its type checks and the editors'
JSON Schema all come from these Structs."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from msgspec import UNSET, Meta, Struct, UnsetType, field

# A pattern rather than min_length, so that "  " is refused too.
NON_BLANK = r"\S"
UTM_NAME = r"^utm_"
# A custom event's name: what TeaserWidget.track() and a shop's backend send as `name`.
EVENT_NAME = r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"
MAX_EVENTS = 64
MAX_PROPS_BYTES = 8192  # half the largest body an event may come in

NonBlank = Annotated[str, Meta(pattern=NON_BLANK)]
NonEmpty = Annotated[str, Meta(min_length=1)]
Count = Annotated[int, Meta(ge=0)]
MAX_VARIANTS = 10
UtmName = Annotated[str, Meta(pattern=UTM_NAME, examples=["utm_source"])]
EventName = Annotated[str, Meta(pattern=EVENT_NAME, examples=["added_to_cart"])]
# HH:MM-HH:MM is checked by parsing it; a regex here would only repeat the parser with a
# worse message.
Window = Annotated[
    str, Meta(description="HH:MM-HH:MM; may wrap midnight.", examples=["22:00-08:00"])
]
# A list of two rather than tuple[int, int]: msgspec writes a tuple as 2020-12
# `prefixItems`, which the draft-4/7 validators in TOML editors read as "no items allowed".
Tier = Annotated[list[Count], Meta(min_length=2, max_length=2, examples=[[60, 25]])]

Situation = Literal[
    "checkout",
    "cart",
    "returning_customer",
    "known_customer",
    "social_traffic",
    "browsing",
    "high_intent",
    "event",
    "any",
]


class _Table(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _ScoreRule(_Table, tag_field="kind", kw_only=True):
    id: Annotated[NonBlank, Meta(description="Unique among the file's [[score]] rules.")]
    label: Annotated[str, Meta(description="Shown to operators; the id when left out.")] = ""


class _PointsRule(_ScoreRule, kw_only=True):
    points: Count = 0


class PathPrefixRule(_PointsRule, tag="path_prefix", kw_only=True):
    """Points once per listed section the visitor has seen."""

    prefixes: Annotated[list[NonEmpty], Meta(min_length=1, examples=[["/chairs", "/cart"]])]


class UtmPresentRule(_PointsRule, tag="utm_present", kw_only=True):
    """Points when the visit carries this UTM parameter."""

    field: UtmName


class UtmEqualsRule(_PointsRule, tag="utm_equals", kw_only=True):
    """Points when this UTM parameter has one of the values (any case)."""

    field: UtmName
    values: Annotated[list[NonEmpty], Meta(min_length=1)]


class CustomerIdRule(_PointsRule, tag="customer_id", kw_only=True):
    """Points when the visitor's customer id is known."""


class CustomerEmailRule(_PointsRule, tag="customer_email", kw_only=True):
    """Points when the visitor's e-mail address is known."""


class SecondsOnPageRule(_ScoreRule, tag="seconds_on_page", kw_only=True):
    """The highest [seconds, points] tier reached on any one page counts."""

    tiers: Annotated[list[Tier], Meta(min_length=1)]


class EventRule(_PointsRule, tag="event", kw_only=True):
    """Points when the visitor has done this declared [[event]] at least min_count times."""

    event: EventName
    min_count: Annotated[int, Meta(ge=1, le=1000)] = 1


ScoreEntry = (
    PathPrefixRule
    | UtmPresentRule
    | UtmEqualsRule
    | CustomerIdRule
    | CustomerEmailRule
    | SecondsOnPageRule
    | EventRule
)
SCORE_KINDS = frozenset(str(rule.__struct_config__.tag) for rule in get_args(ScoreEntry))
SITUATIONS = frozenset(get_args(Situation))


class TriggerSection(_Table, kw_only=True):
    """When a session qualifies for an automatic teaser, and what holds it back."""

    min_score: Count = 50
    min_page_views: Count = 3
    critical_pages: list[NonEmpty] = field(default_factory=lambda: ["/checkout", "/cart"])
    known_customer: bool = True
    cooldown_seconds: Count = 300
    daily_cap: Count = 3
    expires_in_seconds: Annotated[int, Meta(ge=1)] = 300
    business_hours: Window | UnsetType = UNSET
    time_zone: Annotated[str, Meta(examples=["Europe/Berlin"])] | UnsetType = UNSET
    quiet_hours: Window | UnsetType = UNSET
    holdout: Annotated[
        float,
        Meta(
            ge=0,
            le=0.5,
            description="The share of qualifying sessions that get no automatic teaser: the "
            "baseline their conversions are compared with.",
        ),
    ] = 0.0
    min_events: Annotated[
        dict[EventName, Annotated[int, Meta(ge=1, le=1000)]],
        Meta(
            description="Qualifies when the visitor has done one of these [[event]]s at least "
            "this many times.",
            examples=[{"added_to_cart": 2}],
        ),
    ] = {}


class EventEntry(_Table, kw_only=True):
    """A custom event the widget (TeaserWidget.track/goal) or the shop's backend may report;
    an event of a name no [[event]] declares is refused."""

    name: Annotated[EventName, Meta(description="Unique among the file's [[event]]s.")]
    description: str = ""
    max_props_bytes: Annotated[
        int, Meta(ge=0, le=MAX_PROPS_BYTES, description="The largest props, as JSON bytes.")
    ] = 1024
    max_per_minute: Annotated[
        int, Meta(ge=1, le=6000, description="Per visitor session; past it, 429.")
    ] = 30
    server_only: Annotated[
        bool,
        Meta(description="Taken only from the shop's backend (POST /api/events/server)."),
    ] = False


class AttributionSection(_Table, kw_only=True):
    """How conversion analysis credits a goal to a teaser."""

    window_minutes: Annotated[
        int,
        Meta(
            ge=1,
            le=43_200,
            description="A goal counts for the teaser the visitor was shown last, if within "
            "this many minutes before it.",
        ),
    ] = 30


class VariantEntry(_Table, kw_only=True):
    """Another wording of its [[template]]: a session is given one variant, always the same
    one (a hash of the site, the session and the template), with odds by weight."""

    name: Annotated[
        NonBlank,
        Meta(description="Unique among its template's variants; not 'original' (its own text)."),
    ]
    text: NonBlank
    fallback: Annotated[str, Meta(description="Sent when a {variable} has no value.")] = ""
    weight: Annotated[float, Meta(ge=0.01, le=1000, description="Odds against the others.")] = 1.0


class TemplateEntry(_Table, kw_only=True):
    """A message; the first whose situation applies is sent."""

    id: Annotated[NonBlank, Meta(description="Unique among the file's [[template]]s.")]
    situation: Situation
    text: NonBlank
    fallback: Annotated[str, Meta(description="Sent when a {variable} has no value.")] = ""
    sources: list[NonEmpty] = []
    only_on_section: bool = False
    event: (
        Annotated[
            EventName, Meta(description="For situation event: the [[event]] the visitor has done.")
        ]
        | UnsetType
    ) = UNSET
    variant: Annotated[list[VariantEntry], Meta(max_length=MAX_VARIANTS)] = []
    weight: Annotated[
        float,
        Meta(
            ge=0.01,
            le=1000,
            description="With variants: the odds of this template's own text, the variant "
            "'original', against them.",
        ),
    ] = 1.0


class RulesFile(_Table, kw_only=True):
    """A site's teaser rules: how interest is scored, when a teaser is sent, what it says."""

    score: list[ScoreEntry] = []
    trigger: TriggerSection = field(default_factory=TriggerSection)
    template: Annotated[list[TemplateEntry], Meta(min_length=1)]
    event: Annotated[list[EventEntry], Meta(max_length=MAX_EVENTS)] = []
    attribution: AttributionSection = field(default_factory=AttributionSection)
