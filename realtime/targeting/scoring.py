"""The interaction score: each rule (data, per site) gives points with a reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from realtime.targeting.rules import RuleSet, ScoreRule
from realtime.targeting.visitors import VisitorState


@dataclass(frozen=True)
class Contribution:
    rule: str
    label: str
    points: int
    detail: str


@dataclass(frozen=True)
class Score:
    total: int
    contributions: tuple[Contribution, ...]

    def explain(self) -> list[dict[str, object]]:
        return [
            {"rule": c.rule, "label": c.label, "points": c.points, "detail": c.detail}
            for c in self.contributions
        ]


Evaluator = Callable[[ScoreRule, VisitorState], list[Contribution]]


def _path_prefix(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    return [
        Contribution(rule.id, rule.label, rule.points, prefix)
        for prefix in rule.prefixes
        if any(path.startswith(prefix) for path in state.paths)
    ]


def _utm_present(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    value = state.utm.get(rule.field)
    return (
        [Contribution(rule.id, rule.label, rule.points, f"{rule.field}={value}")] if value else []
    )


def _utm_equals(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    value = state.utm.get(rule.field, "").lower()
    hit = value in rule.values
    return [Contribution(rule.id, rule.label, rule.points, f"{rule.field}={value}")] if hit else []


def _customer_id(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    known = state.customer_id
    return [Contribution(rule.id, rule.label, rule.points, "customer id known")] if known else []


def _customer_email(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    # The address itself stays out of explanations, which end up in exports and logs.
    known = state.customer_email
    return [Contribution(rule.id, rule.label, rule.points, "email known")] if known else []


def _seconds_on_page(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    reached = [(s, p) for s, p in rule.tiers if state.longest_seconds_on_page >= s]
    if not reached:
        return []
    seconds, points = reached[-1]  # tiers replace each other; the highest reached counts
    return [Contribution(rule.id, rule.label, points, f"{seconds}+ s on one page")]


EVALUATORS: dict[str, Evaluator] = {
    "path_prefix": _path_prefix,
    "utm_present": _utm_present,
    "utm_equals": _utm_equals,
    "customer_id": _customer_id,
    "customer_email": _customer_email,
    "seconds_on_page": _seconds_on_page,
}


def score(state: VisitorState, rules: RuleSet) -> Score:
    contributions = tuple(c for rule in rules.score for c in EVALUATORS[rule.kind](rule, state))
    return Score(total=sum(c.points for c in contributions), contributions=contributions)
