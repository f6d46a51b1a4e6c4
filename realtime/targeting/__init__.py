"""Who gets an automatic teaser and why: events, visitor state, rules, score, triggers."""

from realtime.targeting.events import CUSTOM_TYPES, EVENT_TYPES, EventType, VisitorEvent
from realtime.targeting.intake import EventIntake
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.rules import DEFAULT_RULES, RuleSet, load_rules
from realtime.targeting.rules_file import EVENT_NAME
from realtime.targeting.simulation import simulate
from realtime.targeting.templates import TemplateGenerator
from realtime.targeting.wordings import SessionWordings, Wording

__all__ = [
    "CUSTOM_TYPES",
    "DEFAULT_RULES",
    "EVENT_NAME",
    "EVENT_TYPES",
    "EventIntake",
    "EventType",
    "RuleBook",
    "RuleSet",
    "SessionWordings",
    "TemplateGenerator",
    "VisitorEvent",
    "Wording",
    "load_rules",
    "simulate",
]
