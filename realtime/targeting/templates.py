"""What an automatic teaser says: the first template whose situation applies, in the
wording the session is assigned (realtime/targeting/experiments.py), with the visitor's
details filled in. A missing detail never produces a broken message."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from realtime.targeting.experiments import variant_for
from realtime.targeting.rules import RuleSet, Template
from realtime.targeting.scoring import Score
from realtime.targeting.visitors import VisitorState

MAX_VARIABLE_LENGTH = 60


@dataclass(frozen=True)
class TeaserContext:
    state: VisitorState
    score: Score
    rules: RuleSet
    cart_items: int | None = None
    # Whose session this is: a template's variant is chosen by them.
    site_id: str = ""
    session_id: str = ""

    @property
    def section(self) -> str | None:
        """The high-value section the visitor is in now, e.g. '/chairs'."""
        path = self.state.current_path or ""
        return next((p for p in self.rules.high_value_prefixes if path.startswith(p)), None)

    def variables(self) -> dict[str, str]:
        state = self.state
        values = {
            "customer_id": state.customer_id,
            "customer_email": state.customer_email,
            "utm_source": _title(state.utm.get("utm_source")),
            "utm_campaign": state.utm.get("utm_campaign"),
            "page_category": (self.section or "").strip("/").replace("-", " ") or None,
            "page_path": state.current_path,
            "cart_items": None if self.cart_items is None else str(self.cart_items),
            "score": str(self.score.total),
        }
        return {k: v[:MAX_VARIABLE_LENGTH] for k, v in values.items() if v}


@dataclass(frozen=True)
class GeneratedTeaser:
    text: str
    template_id: str
    situation: str
    only_on_path: str | None = None
    variant: str | None = None  # the wording's name, for a template with variants


class MessageGenerator(Protocol):
    """Writes the automatic teaser for a visitor; an LLM-backed one can stand in later."""

    async def generate(self, context: TeaserContext) -> GeneratedTeaser | None: ...


Situation = Callable[[TeaserContext, Template], bool]


def _on(prefix: str) -> Situation:
    return lambda context, _t: (context.state.current_path or "").startswith(prefix)


SITUATIONS: dict[str, Situation] = {
    "checkout": _on("/checkout"),
    "cart": _on("/cart"),
    # Known, and seen on an earlier visit: only then is it "welcome back".
    "returning_customer": lambda context, _t: bool(
        context.state.customer_id and context.state.returning_customer
    ),
    "known_customer": lambda context, _t: bool(context.state.customer_id),
    "social_traffic": lambda context, t: (
        context.state.utm.get("utm_source", "").lower() in t.sources
    ),
    "browsing": lambda context, _t: context.section is not None,
    "high_intent": lambda context, _t: (
        context.rules.trigger.min_score is not None
        and context.score.total >= context.rules.trigger.min_score
    ),
    "event": lambda context, t: context.state.custom_events.get(t.event, 0) > 0,
    "any": lambda _c, _t: True,
}


def render(text: str, variables: dict[str, str]) -> str | None:
    """Fill {name} fields; None when a field has no value or the text is malformed."""
    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(text)
            if name is not None
        ]
        if any(spec or conv or name not in variables for name, spec, conv in fields):
            return None
        return text.format_map(variables).strip() or None
    except (ValueError, IndexError, KeyError):
        return None


class TemplateGenerator:
    """The default, deterministic generator."""

    async def generate(self, context: TeaserContext) -> GeneratedTeaser | None:
        variables = context.variables()
        for template in context.rules.templates:
            if not SITUATIONS[template.situation](context, template):
                continue
            variant = variant_for(context.site_id, context.session_id, template)
            # A variant's own text, then its fallback; the template's fallback last, so a
            # variant whose fields have no value still says something in its place.
            texts = (variant.text, variant.fallback) if variant else (template.text,)
            text = next(
                (done for t in (*texts, template.fallback) if (done := render(t, variables))),
                None,
            )
            if text:
                only = (
                    f"{context.section}*" if template.only_on_section and context.section else None
                )
                name = variant.name if variant else None
                return GeneratedTeaser(text, template.id, template.situation, only, name)
        return None


def _title(source: str | None) -> str | None:
    return source.strip().title() if source else None
