"""Who gets an automatic teaser and why: events, visitor state, rules, score, triggers."""

from realtime.targeting.events import EVENT_TYPES, EventType, VisitorEvent
from realtime.targeting.intake import EventIntake
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.rules import DEFAULT_RULES, RuleSet, load_rules
from realtime.targeting.simulation import simulate
from realtime.targeting.templates import TemplateGenerator

__all__ = [
    "DEFAULT_RULES",
    "EVENT_TYPES",
    "EventIntake",
    "EventType",
    "RuleBook",
    "RuleSet",
    "TemplateGenerator",
    "VisitorEvent",
    "load_rules",
    "simulate",
]
