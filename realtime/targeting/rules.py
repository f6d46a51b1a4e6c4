"""A site's rules (scoring, triggers, templates) as data, decoded from one TOML file with
errors that name the entry at fault."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import time
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from realtime.platform.errors import RulesError
from realtime.platform.refusals import MISSING_FIELD, UNKNOWN_FIELD, problem_and_path
from realtime.targeting.rules_file import (
    EVENT_NAME,
    NON_BLANK,
    SCORE_KINDS,
    SITUATIONS,
    UTM_NAME,
    EventEntry,
    RulesFile,
    ScoreEntry,
    TemplateEntry,
    TriggerSection,
)

# Package data, so they are found in an installed wheel as in a checkout.
DEFAULT_RULES = files(__package__) / "default_rules.toml"
RULES_SCHEMA = files(__package__) / "rules.schema.json"


@dataclass(frozen=True)
class ScoreRule:
    id: str
    kind: str
    label: str
    points: int = 0
    prefixes: tuple[str, ...] = ()
    field: str = ""
    values: tuple[str, ...] = ()
    tiers: tuple[tuple[int, int], ...] = ()
    event: str = ""
    min_count: int = 1


@dataclass(frozen=True)
class CustomEvent:
    """A custom event a site takes (a [[event]] of its rules file), and its limits."""

    name: str
    description: str = ""
    max_props_bytes: int = 1024
    max_per_minute: int = 30
    server_only: bool = False


@dataclass(frozen=True)
class DailyWindow:
    """A time-of-day window such as 22:00-08:00 (it may wrap midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        """'22:00-08:00' → a window; ValueError if it is not like that."""
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        if start.tzinfo or end.tzinfo:
            # An offset would make contains() compare aware with naive times and raise;
            # the zone is the policy's time_zone (or the visitor's), never the window's.
            raise ValueError(f"'{text}' carries a UTC offset")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class TriggerPolicy:
    min_score: int | None = 50
    min_page_views: int | None = 3
    critical_pages: tuple[str, ...] = ("/checkout", "/cart")
    known_customer: bool = True
    cooldown_seconds: int = 300
    daily_cap: int = 3
    expires_in_seconds: int = 300
    business_hours: DailyWindow | None = None
    time_zone: ZoneInfo | None = None
    quiet_hours: DailyWindow | None = None
    min_events: tuple[tuple[str, int], ...] = ()
    holdout: float = 0.0


# The name of a template's own text among its variants.
ORIGINAL = "original"


@dataclass(frozen=True)
class Variant:
    name: str
    text: str
    fallback: str = ""
    weight: float = 1.0


@dataclass(frozen=True)
class Template:
    id: str
    situation: str
    text: str
    fallback: str = ""
    sources: tuple[str, ...] = ()
    only_on_section: bool = False
    event: str = ""
    variants: tuple[Variant, ...] = ()
    weight: float = 1.0  # of its own text, the variant "original", against its variants


@dataclass(frozen=True)
class RuleSet:
    source: str
    score: tuple[ScoreRule, ...]
    trigger: TriggerPolicy
    templates: tuple[Template, ...] = field(default=())
    events: dict[str, CustomEvent] = field(default_factory=dict)
    attribution_window_minutes: int = 30

    @property
    def high_value_prefixes(self) -> tuple[str, ...]:
        return tuple(p for rule in self.score if rule.kind == "path_prefix" for p in rule.prefixes)


def load_rules(path: Path | Traversable) -> RuleSet:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_rules(data, str(path))


def default_rules() -> RuleSet:
    return load_rules(DEFAULT_RULES)


def parse_rules(data: bytes | str, source: str) -> RuleSet:
    try:
        document = msgspec.toml.decode(data, type=RulesFile)
    except msgspec.ValidationError as exc:
        raise _refusal(source, exc) from None
    except msgspec.DecodeError as exc:  # TOML syntax, or bytes that are not UTF-8
        raise RulesError(f"{source}: not valid TOML ({exc})") from None
    score = tuple(_score_rule(entry) for entry in document.score)
    templates = tuple(_template(entry) for entry in document.template)
    _unique(source, "score", [rule.id for rule in score])
    _unique(source, "template", [template.id for template in templates])
    for template in templates:
        names = [variant.name for variant in template.variants]
        # The template's own text is the variant "original": no other may take the name.
        _unique(source, f"template '{template.id}' variant", [ORIGINAL, *names])
    _unique(source, "event", [entry.name for entry in document.event])
    events = {entry.name: _custom_event(entry) for entry in document.event}
    _declared(source, events, document)
    trigger = _trigger(document.trigger, source)
    return RuleSet(
        source=source,
        score=score,
        trigger=trigger,
        templates=templates,
        events=events,
        attribution_window_minutes=document.attribution.window_minutes,
    )


def rules_json_schema() -> dict[str, Any]:
    """The rules file's JSON Schema for editors, committed as rules.schema.json."""
    # Spelled for draft 4 to 7 (`definitions`, the root inlined, no empty `required`, which
    # draft 4 refuses): Taplo, behind most TOML editors, reads those, not msgspec's 2020-12.
    (_,), definitions = msgspec.json.schema_components(
        [RulesFile], ref_template="#/definitions/{name}"
    )
    for struct in definitions.values():
        if not struct.get("required", True):
            del struct["required"]
    root = definitions.pop(RulesFile.__name__)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **root,
        "definitions": definitions,
    }


def write_rules_json_schema(path: Path | None = None) -> None:
    """Regenerate rules.schema.json in the checkout (or write it to `path`)."""
    path = path or Path(__file__).with_name("rules.schema.json")
    text = json.dumps(rules_json_schema(), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def _unique(source: str, what: str, ids: list[str]) -> None:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise RulesError(f"{source}: {what} id(s) used twice: {', '.join(repeated)}")


def _declared(source: str, events: dict[str, CustomEvent], document: RulesFile) -> None:
    """Every event a rule names is one the file declares: one that isn't could never come."""
    named = [
        *(
            (f"score[{i}].event", getattr(entry, "event", ""))
            for i, entry in enumerate(document.score)
        ),
        *((f"trigger.min_events.{name}", name) for name in document.trigger.min_events),
        *(
            (f"template[{i}].event", entry.event)
            for i, entry in enumerate(document.template)
            if entry.event is not msgspec.UNSET
        ),
    ]
    for where, name in named:
        if name and name not in events:
            raise _fail(source, where, f"'{name}' is not declared: add [[event]] name = \"{name}\"")
    for i, entry in enumerate(document.template):
        if entry.situation == "event" and entry.event is msgspec.UNSET:
            raise _fail(source, f"template[{i}].event", "situation event needs the event's name")


def _custom_event(entry: EventEntry) -> CustomEvent:
    return CustomEvent(
        name=entry.name,
        description=entry.description,
        max_props_bytes=entry.max_props_bytes,
        max_per_minute=entry.max_per_minute,
        server_only=entry.server_only,
    )


def _score_rule(entry: ScoreEntry) -> ScoreRule:
    given = msgspec.structs.asdict(entry)  # each kind has only the fields it needs
    return ScoreRule(
        id=entry.id,
        kind=str(entry.__struct_config__.tag),
        label=entry.label or entry.id,
        points=given.get("points", 0),
        prefixes=tuple(given.get("prefixes", ())),
        field=given.get("field", ""),
        values=tuple(value.lower() for value in given.get("values", ())),
        tiers=tuple(sorted((seconds, points) for seconds, points in given.get("tiers", ()))),
        event=given.get("event", ""),
        min_count=given.get("min_count", 1),
    )


def _template(entry: TemplateEntry) -> Template:
    return Template(
        id=entry.id,
        situation=entry.situation,
        text=entry.text,
        fallback=entry.fallback,
        sources=tuple(source.lower() for source in entry.sources),
        only_on_section=entry.only_on_section,
        event=entry.event or "",
        variants=tuple(Variant(v.name, v.text, v.fallback, v.weight) for v in entry.variant),
        weight=entry.weight,
    )


def _trigger(entry: TriggerSection, source: str) -> TriggerPolicy:
    if entry.business_hours is not msgspec.UNSET and entry.time_zone is msgspec.UNSET:
        raise _fail(source, "trigger.time_zone", "business_hours needs the shop's time_zone")
    return TriggerPolicy(
        min_score=entry.min_score,
        min_page_views=entry.min_page_views,
        critical_pages=tuple(entry.critical_pages),
        known_customer=entry.known_customer,
        cooldown_seconds=entry.cooldown_seconds,
        daily_cap=entry.daily_cap,
        expires_in_seconds=entry.expires_in_seconds,
        business_hours=_window(entry.business_hours, "trigger.business_hours", source),
        time_zone=_zone(entry.time_zone, source),
        quiet_hours=_window(entry.quiet_hours, "trigger.quiet_hours", source),
        min_events=tuple(sorted(entry.min_events.items())),
        holdout=entry.holdout,
    )


def _window(text: str | msgspec.UnsetType, where: str, source: str) -> DailyWindow | None:
    if text is msgspec.UNSET:
        return None
    try:
        return DailyWindow.parse(text)
    except ValueError:
        raise _fail(source, where, f"'{text}' is not like 09:00-18:00") from None


def _zone(name: str | msgspec.UnsetType, source: str) -> ZoneInfo | None:
    if name is msgspec.UNSET:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(source, "trigger.time_zone", f"'{name}' is not a known time zone") from None


def _fail(source: str, where: str, message: str) -> RulesError:
    return RulesError(f"{source}: {where}: {message}" if where else f"{source}: {message}")


def _refusal(source: str, error: msgspec.ValidationError) -> RulesError:
    """msgspec's "Problem - at `$.template[2].situation`" as "template[2].situation: problem"."""
    problem, where = problem_and_path(error)  # no path: the file's top level
    return _fail(source, where, _in_words(problem, where))


# What msgspec words by Python type, value or regex, worded the way a rules file's readers
# know it: TOML's kinds of value, the choices a key has, what a pattern means.
_INVALID = re.compile(r"Invalid (?:enum )?value (?P<value>.+)")
_EXPECTED = re.compile(r"Expected `(?P<want>\w+)`(?P<more>.*?)(?:, got `(?P<got>\w+)`)?")
_TOML_KINDS = {"str": "a string", "int": "an integer", "float": "a float", "bool": "true or false",
               "array": "an array", "object": "a table", "dict": "a table", "date": "a date",
               "time": "a time", "datetime": "a date-time"}  # fmt: skip
_CHOICES = {"kind": SCORE_KINDS, "situation": SITUATIONS}
_PATTERN_WORDS = {
    f"Expected `str` matching regex {NON_BLANK!r}": "must be a non-empty string",
    f"Expected `str` matching regex {UTM_NAME!r}": "must name a utm_* parameter",
    f"Expected `str` matching regex {EVENT_NAME!r}": "must be an event name: a letter, then "
    "up to 63 letters, digits, '_', '.', ':' or '-'",
}


def _in_words(problem: str, where: str) -> str:
    if problem in _PATTERN_WORDS:
        return _PATTERN_WORDS[problem]
    if found := MISSING_FIELD.fullmatch(problem):
        return f"needs {found['key']}"
    if found := UNKNOWN_FIELD.fullmatch(problem):
        return f"unknown key {found['key']}"
    choices = _CHOICES.get(where.rpartition(".")[2])
    if (found := _INVALID.fullmatch(problem)) and choices:
        return f"{found['value']} is not one of {sorted(choices)}"
    if found := _EXPECTED.fullmatch(problem):
        got = f", got {_kind(found['got'])}" if found["got"] else ""
        return f"must be {_kind(found['want'])}{found['more']}{got}"
    return problem


def _kind(name: str) -> str:
    return _TOML_KINDS.get(name, name)
