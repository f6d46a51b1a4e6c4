"""The targeting pipeline, once: what an event does to a visitor's state and score, and
whether it sends an automatic teaser. Live intake and the dry run both go through it."""

from __future__ import annotations

from dataclasses import dataclass

from realtime.targeting.events import VisitorEvent
from realtime.targeting.experiments import held_out
from realtime.targeting.rules import RuleSet
from realtime.targeting.scoring import Score, score
from realtime.targeting.templates import GeneratedTeaser, MessageGenerator, TeaserContext
from realtime.targeting.triggers import Decision, Fatigue, decide, utc_day
from realtime.targeting.visitors import VisitorState

# Only signs of a visitor actively on a page can trigger (a custom event the shop tracks is
# one); a leave, a click or a goal reached cannot.
TRIGGERING_EVENTS = frozenset({"page_view", "time_on_page", "track"})


@dataclass
class Evaluation:
    state: VisitorState
    score: Score
    duplicate: bool
    site_id: str
    session_id: str
    decision: Decision | None = None
    generated: GeneratedTeaser | None = None
    # What a session in the holdout would have been sent, and was not.
    withheld: GeneratedTeaser | None = None

    @property
    def held_out(self) -> bool:
        return self.withheld is not None


def may_trigger(event: VisitorEvent) -> bool:
    return event.type in TRIGGERING_EVENTS


def evaluate(
    state: VisitorState, event: VisitorEvent, rules: RuleSet, fatigue: Fatigue | None, now: int
) -> Evaluation:
    """Apply `event` to `state` and decide. A replayed event is counted once, yet the facts
    it brings are learned; only a replay that brings nothing new is a duplicate, which
    changes nothing and cannot trigger. `fatigue` may be None for an event that cannot
    trigger: nothing then reads it."""
    first_time = state.first_time(event.fingerprint)
    learned = state.learn(event)
    if first_time:
        state.count(event)
    duplicate = not (first_time or learned)
    evaluation = Evaluation(state, score(state, rules), duplicate, event.site_id, event.session_id)
    if not duplicate and may_trigger(event) and fatigue is not None:
        evaluation.decision = decide(state, evaluation.score, rules.trigger, fatigue, now)
    return evaluation


async def compose(
    evaluation: Evaluation, rules: RuleSet, generator: MessageGenerator, now: int
) -> GeneratedTeaser | None:
    """The automatic teaser a decision to send says, counted against the daily cap; None
    for a session in the holdout. Its teaser is written all the same, and kept as
    `withheld`: the holdout is the sessions that would have had one, so that they compare
    with those that did. Being held out is a hash, so every worker agrees on it."""
    if evaluation.decision is None or not evaluation.decision.send:
        return None
    context = TeaserContext(
        evaluation.state,
        evaluation.score,
        rules,
        site_id=evaluation.site_id,
        session_id=evaluation.session_id,
    )
    generated = await generator.generate(context)
    if generated is None:
        return None
    if held_out(evaluation.site_id, evaluation.session_id, rules.trigger.holdout):
        evaluation.withheld = generated
        return None
    evaluation.generated = generated
    evaluation.state.count_auto_teaser(now, utc_day(now))
    return generated
