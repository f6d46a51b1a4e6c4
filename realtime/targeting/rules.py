"""A site's rules (scoring, triggers, templates) as data, read from one TOML file and
validated with errors that name the entry at fault."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from realtime.platform.errors import RulesError

DEFAULT_RULES = Path(__file__).resolve().parent / "default_rules.toml"

SCORE_KINDS = frozenset(
    {"path_prefix", "utm_present", "utm_equals", "customer_id", "customer_email", "seconds_on_page"}
)
SITUATIONS = frozenset(
    {"checkout", "cart", "known_customer", "social_traffic", "browsing", "high_intent", "any"}
)


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


@dataclass(frozen=True)
class DailyWindow:
    """A time-of-day window such as 22:00-08:00 (it may wrap midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        """'22:00-08:00' → a window; ValueError if it is not like that."""
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
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


@dataclass(frozen=True)
class Template:
    id: str
    situation: str
    text: str
    fallback: str = ""
    sources: tuple[str, ...] = ()
    only_on_section: bool = False


@dataclass(frozen=True)
class RuleSet:
    source: str
    score: tuple[ScoreRule, ...]
    trigger: TriggerPolicy
    templates: tuple[Template, ...] = field(default=())

    @property
    def high_value_prefixes(self) -> tuple[str, ...]:
        return tuple(p for rule in self.score if rule.kind == "path_prefix" for p in rule.prefixes)


def load_rules(path: Path) -> RuleSet:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: not valid TOML ({exc})") from None
    return parse_rules(document, str(path))


def default_rules() -> RuleSet:
    return load_rules(DEFAULT_RULES)


def parse_rules(document: dict[str, Any], source: str) -> RuleSet:
    reader = _Reader(source)
    unknown = set(document) - {"score", "trigger", "template"}
    if unknown:
        raise RulesError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    score = tuple(
        reader.score_rule(entry, f"score[{i}]")
        for i, entry in enumerate(reader.tables(document, "score"))
    )
    templates = tuple(
        reader.template(entry, f"template[{i}]")
        for i, entry in enumerate(reader.tables(document, "template"))
    )
    _unique(source, "score", [rule.id for rule in score])
    _unique(source, "template", [template.id for template in templates])
    if not templates:
        raise RulesError(f"{source}: needs at least one [[template]]")
    trigger = reader.trigger(document.get("trigger", {}), "trigger")
    return RuleSet(source=source, score=score, trigger=trigger, templates=templates)


def _unique(source: str, what: str, ids: list[str]) -> None:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise RulesError(f"{source}: {what} id(s) used twice: {', '.join(repeated)}")


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> RulesError:
        return RulesError(f"{self.source}: {where}: {message}")

    def tables(self, document: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"must be written as [[{key}]] tables")
        return value

    def text(self, entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = entry.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise self.fail(f"{where}.{key}", "must be a non-empty string")
        return value

    def integer(
        self,
        entry: dict[str, Any],
        key: str,
        where: str,
        default: int | None = None,
        minimum: int = 0,
    ) -> int:
        value = entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{where}.{key}", f"must be an integer ≥ {minimum}")
        return value

    def strings(self, entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{where}.{key}", "must be a list of non-empty strings")
        return tuple(value)

    def score_rule(self, entry: dict[str, Any], where: str) -> ScoreRule:
        kind = self.text(entry, "kind", where)
        if kind not in SCORE_KINDS:
            raise self.fail(f"{where}.kind", f"'{kind}' is not one of {sorted(SCORE_KINDS)}")
        rule = ScoreRule(
            id=self.text(entry, "id", where),
            kind=kind,
            label=self.text(entry, "label", where, default=entry.get("id", "")),
            points=self.integer(entry, "points", where, default=0),
            prefixes=self.strings(entry, "prefixes", where),
            field=self.text(entry, "field", where, default=""),
            values=tuple(v.lower() for v in self.strings(entry, "values", where)),
            tiers=self.tiers(entry, where),
        )
        self.check_score_rule(rule, where)
        return rule

    def check_score_rule(self, rule: ScoreRule, where: str) -> None:
        needs = {
            "path_prefix": rule.prefixes,
            "utm_present": rule.field,
            "utm_equals": rule.field and rule.values,
            "seconds_on_page": rule.tiers,
        }
        if rule.kind in needs and not needs[rule.kind]:
            wanted = {
                "path_prefix": "prefixes",
                "utm_present": "field",
                "utm_equals": "field and values",
                "seconds_on_page": "tiers",
            }[rule.kind]
            raise self.fail(where, f"a '{rule.kind}' rule needs {wanted}")
        if rule.field and not rule.field.startswith("utm_"):
            raise self.fail(f"{where}.field", "must name a utm_* parameter")

    def tiers(self, entry: dict[str, Any], where: str) -> tuple[tuple[int, int], ...]:
        value = entry.get("tiers", [])
        valid = isinstance(value, list) and all(
            isinstance(t, list) and len(t) == 2 and all(isinstance(n, int) and n >= 0 for n in t)
            for t in value
        )
        if not valid:
            raise self.fail(f"{where}.tiers", "must be a list of [seconds, points] pairs")
        pairs = tuple(sorted((int(s), int(p)) for s, p in value))
        return pairs

    def template(self, entry: dict[str, Any], where: str) -> Template:
        situation = self.text(entry, "situation", where)
        if situation not in SITUATIONS:
            raise self.fail(
                f"{where}.situation", f"'{situation}' is not one of {sorted(SITUATIONS)}"
            )
        only = entry.get("only_on_section", False)
        if not isinstance(only, bool):
            raise self.fail(f"{where}.only_on_section", "must be true or false")
        return Template(
            id=self.text(entry, "id", where),
            situation=situation,
            text=self.text(entry, "text", where),
            fallback=self.text(entry, "fallback", where, default=""),
            sources=tuple(s.lower() for s in self.strings(entry, "sources", where)),
            only_on_section=only,
        )

    def trigger(self, entry: Any, where: str) -> TriggerPolicy:
        if not isinstance(entry, dict):
            raise self.fail(where, "must be a [trigger] table")
        optional = {k: entry.get(k) for k in ("min_score", "min_page_views")}
        for key, value in optional.items():
            if value is not None:
                self.integer(entry, key, where)
        known = entry.get("known_customer", True)
        if not isinstance(known, bool):
            raise self.fail(f"{where}.known_customer", "must be true or false")
        return TriggerPolicy(
            min_score=optional["min_score"] if "min_score" in entry else 50,
            min_page_views=optional["min_page_views"] if "min_page_views" in entry else 3,
            critical_pages=self.strings(entry, "critical_pages", where)
            if "critical_pages" in entry
            else ("/checkout", "/cart"),
            known_customer=known,
            cooldown_seconds=self.integer(entry, "cooldown_seconds", where, default=300),
            daily_cap=self.integer(entry, "daily_cap", where, default=3),
            expires_in_seconds=self.integer(
                entry, "expires_in_seconds", where, default=300, minimum=1
            ),
            business_hours=self.window(entry, "business_hours", where),
            time_zone=self.zone(entry, where),
            quiet_hours=self.window(entry, "quiet_hours", where),
        )

    def window(self, entry: dict[str, Any], key: str, where: str) -> DailyWindow | None:
        value = entry.get(key)
        if value is None:
            return None
        try:
            return DailyWindow.parse(str(value))
        except ValueError:
            raise self.fail(f"{where}.{key}", f"'{value}' is not like 09:00-18:00") from None

    def zone(self, entry: dict[str, Any], where: str) -> ZoneInfo | None:
        name = entry.get("time_zone")
        if name is None:
            if entry.get("business_hours") is not None:
                raise self.fail(f"{where}.time_zone", "business_hours needs the shop's time_zone")
            return None
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(f"{where}.time_zone", f"'{name}' is not a known time zone") from None
