"""Every wording a site's templates offer, filled in for one session, as an operator's
custom teaser may start from them: rendered as the automatic teaser would be (its own
text, then the variant's fallback, then the template's), whatever the situation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.platform.tables import visitor_sessions
from realtime.targeting.experiments import wordings
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.rules import RuleSet, Template
from realtime.targeting.scoring import score
from realtime.targeting.templates import TeaserContext, render
from realtime.targeting.visitors import VisitorState


@dataclass(frozen=True)
class Wording:
    template: str
    variant: str | None  # None for a template without variants
    text: str | None  # None: neither it nor a fallback renders for this session
    source: str  # as the rules file has it, {fields} and all


def wordings_of(rules: RuleSet, variables: dict[str, str]) -> list[Wording]:
    """Each template's wordings in the rules file's order, rendered with `variables`."""
    return [wording for template in rules.templates for wording in _of(template, variables)]


def _of(template: Template, variables: dict[str, str]) -> list[Wording]:
    choices = wordings(template)
    if not choices:
        texts = (template.text, template.fallback)
        return [Wording(template.id, None, _first(texts, variables), template.text)]
    return [
        Wording(
            template.id,
            variant.name,
            _first((variant.text, variant.fallback, template.fallback), variables),
            variant.text,
        )
        for variant in choices
    ]


def _first(texts: tuple[str, ...], variables: dict[str, str]) -> str | None:
    return next((done for text in texts if text and (done := render(text, variables))), None)


class SessionWordings:
    def __init__(self, engine: AsyncEngine, rulebook: RuleBook) -> None:
        self.engine = engine
        self.rulebook = rulebook

    async def for_session(self, site_id: str, session_id: str) -> list[Wording]:
        """A session not stored (yet) has no variables: its wordings fall to fallbacks."""
        rules = self.rulebook.for_site(site_id)
        state = await self._state(site_id, session_id)
        context = TeaserContext(
            state, score(state, rules), rules, site_id=site_id, session_id=session_id
        )
        return wordings_of(rules, context.variables())

    async def _state(self, site_id: str, session_id: str) -> VisitorState:
        sessions = visitor_sessions.c
        query = select(sessions.state).where(
            sessions.site_id == site_id, sessions.session_id == session_id
        )
        async with self.engine.connect() as connection:
            stored = (await connection.execute(query)).scalar_one_or_none()
        return VisitorState.from_json(stored)
