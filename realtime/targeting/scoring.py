"""The interaction score: each rule (data, per site) gives points with a reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

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
        return explain(self.contributions)

    def since(self, before: Score) -> Change:
        """What this score holds that `before` did not, and the reverse, compared by
        (rule, detail). A contribution that took the place of one of the same rule (a
        higher tier of seconds_on_page) is one change, worth the difference in points."""
        old = {(c.rule, c.detail): c for c in before.contributions}
        new = {(c.rule, c.detail): c for c in self.contributions}
        lost: dict[str, list[Contribution]] = defaultdict(list)
        for key, contribution in old.items():
            if key not in new:
                lost[contribution.rule].append(contribution)
        added = []
        for key, contribution in new.items():
            if key in old:
                continue
            if lost[contribution.rule]:
                replaced = lost[contribution.rule].pop(0)
                contribution = replace(contribution, points=contribution.points - replaced.points)
            added.append(contribution)
        return Change(tuple(added), tuple(c for gone in lost.values() for c in gone))


@dataclass(frozen=True)
class Change:
    """What one event did to the score: contributions it added and ones it removed."""

    added: tuple[Contribution, ...] = ()
    removed: tuple[Contribution, ...] = ()

    def explain(self) -> dict[str, list[dict[str, object]]]:
        return {"added": explain(self.added), "removed": explain(self.removed)}


def explain(contributions: Iterable[Contribution]) -> list[dict[str, object]]:
    return [
        {"rule": c.rule, "label": c.label, "points": c.points, "detail": c.detail}
        for c in contributions
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


def _event(rule: ScoreRule, state: VisitorState) -> list[Contribution]:
    if state.custom_events.get(rule.event, 0) < rule.min_count:
        return []
    # The rule's bar, not the count: a third add to cart changes nothing in the explanation.
    times = f" {rule.min_count}+ times" if rule.min_count > 1 else ""
    return [Contribution(rule.id, rule.label, rule.points, f"{rule.event}{times}")]


EVALUATORS: dict[str, Evaluator] = {
    "path_prefix": _path_prefix,
    "utm_present": _utm_present,
    "utm_equals": _utm_equals,
    "customer_id": _customer_id,
    "customer_email": _customer_email,
    "seconds_on_page": _seconds_on_page,
    "event": _event,
}


def score(state: VisitorState, rules: RuleSet) -> Score:
    contributions = tuple(c for rule in rules.score for c in EVALUATORS[rule.kind](rule, state))
    return Score(total=sum(c.points for c in contributions), contributions=contributions)
