"""Which wording a session sees, and whether it is held out: decided once, by a hash of
the site, the session and the experiment, so a visitor sees one variant across pages,
workers and restarts, with nothing stored to decide it. Holdout and variants hash apart,
so being held out says nothing about the variant a session would have had.

A template with variants offers its own text too, as the variant "original"."""

from __future__ import annotations

import hashlib

from realtime.targeting.rules import ORIGINAL, Template, Variant

HOLDOUT = "holdout"


def bucket(site_id: str, session_id: str, experiment: str) -> float:
    """A number in [0, 1), uniform over sessions, the same every time for one session."""
    key = "\x1f".join((site_id, session_id, experiment)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def held_out(site_id: str, session_id: str, share: float) -> bool:
    """Whether this session is in the holdout: that share of sessions get no auto teaser."""
    return share > 0 and bucket(site_id, session_id, HOLDOUT) < share


def wordings(template: Template) -> tuple[Variant, ...]:
    """The wordings a session may be given: none to choose from without variants, else
    the template's own text ("original") and its variants."""
    if not template.variants:
        return ()
    original = Variant(ORIGINAL, template.text, template.fallback, template.weight)
    return (original, *template.variants)


def variant_for(site_id: str, session_id: str, template: Template) -> Variant | None:
    """The wording this session sees, by weight; None for a template without variants."""
    choices = wordings(template)
    if not choices:
        return None
    total = sum(variant.weight for variant in choices)
    point = bucket(site_id, session_id, f"template:{template.id}") * total
    for variant in choices:
        point -= variant.weight
        if point < 0:
            return variant
    return choices[-1]  # rounding at the very top
