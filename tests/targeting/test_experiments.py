"""Variants and the holdout: a session is assigned once and always alike, the shares
follow the weights over 10,000 sessions, and the rules file says how."""

from __future__ import annotations

from collections import Counter

import pytest

from realtime.platform.errors import RulesError
from realtime.targeting.experiments import bucket, held_out, variant_for
from realtime.targeting.rules import Template, Variant, parse_rules

SESSIONS = [f"sess_{n:05d}" for n in range(10_000)]
TWO_WORDINGS = Template(
    id="cart",
    situation="cart",
    text="Need a hand with your cart?",
    variants=(
        Variant("plain", "Need a hand?", weight=1),
        Variant("bold", "Free shipping!", weight=3),
    ),
)


def test_a_session_gets_the_same_variant_every_time() -> None:
    first = [variant_for("acme", s, TWO_WORDINGS) for s in SESSIONS[:100]]
    again = [variant_for("acme", s, TWO_WORDINGS) for s in SESSIONS[:100]]

    assert first == again
    assert bucket("acme", "sess_1", "x") == bucket("acme", "sess_1", "x")


def test_the_variants_share_the_sessions_by_weight() -> None:
    names = Counter(v.name for v in (variant_for("acme", s, TWO_WORDINGS) for s in SESSIONS) if v)

    # The template's own text is the variant "original", weight 1: odds 1 : 1 : 3.
    assert names.keys() == {"original", "plain", "bold"}
    assert names["bold"] / len(SESSIONS) == pytest.approx(0.6, abs=0.015)  # 3 sigma: 0.0147
    assert names["original"] / len(SESSIONS) == pytest.approx(0.2, abs=0.012)  # 3 sigma: 0.012


def test_the_template_s_own_weight_sets_the_odds_of_its_original_text() -> None:
    mostly_original = Template(**{**TWO_WORDINGS.__dict__, "weight": 16.0})
    names = Counter(
        v.name for v in (variant_for("acme", s, mostly_original) for s in SESSIONS) if v
    )

    assert names["original"] / len(SESSIONS) == pytest.approx(0.8, abs=0.012)  # 16 of 20


def test_the_holdout_takes_its_share_independently_of_the_variant() -> None:
    out = [s for s in SESSIONS if held_out("acme", s, 0.1)]
    bold_among_out = [variant_for("acme", s, TWO_WORDINGS) for s in out]

    assert len(out) / len(SESSIONS) == pytest.approx(0.1, abs=0.009)
    assert sum(v is not None and v.name == "bold" for v in bold_among_out) / len(out) == (
        pytest.approx(0.6, abs=0.05)  # 3 sigma at n = 1,000: 0.046
    )
    assert not any(held_out("acme", s, 0.0) for s in SESSIONS)


def test_another_site_or_template_assigns_anew() -> None:
    other = Template(**{**TWO_WORDINGS.__dict__, "id": "checkout"})
    same = sum(
        variant_for("acme", s, TWO_WORDINGS) == variant_for("acme", s, other) for s in SESSIONS
    )

    assert same / len(SESSIONS) == pytest.approx(0.44, abs=0.02)  # 0.2² + 0.2² + 0.6²
    assert variant_for("acme", "s", Template("t", "any", "no variants")) is None


RULES = """
[trigger]
holdout = 0.1

[[template]]
id = "cart"
situation = "cart"
text = "Need a hand with your cart?"

[[template.variant]]
name = "plain"
text = "Need a hand?"

[[template.variant]]
name = "free-shipping"
text = "Free shipping on {page_category} today"
fallback = "Free shipping today"
weight = 2
"""


def test_the_rules_file_declares_variants_and_a_holdout() -> None:
    rules = parse_rules(RULES, "rules.toml")

    assert rules.trigger.holdout == 0.1
    assert [(v.name, v.weight) for v in rules.templates[0].variants] == [
        ("plain", 1.0),
        ("free-shipping", 2.0),
    ]
    assert rules.templates[0].variants[1].fallback == "Free shipping today"


@pytest.mark.parametrize(
    "change,words",
    [
        ('name = "free-shipping"', "used twice: plain"),
        ("weight = 2", "weight"),
        ("holdout = 0.1", "holdout"),
        ('name = "plain"', "used twice: original"),
    ],
    ids=["a variant name twice", "weight 0", "holdout over a half", "a variant named original"],
)
def test_a_bad_variant_or_holdout_is_refused_with_its_place(change: str, words: str) -> None:
    broken = {
        'name = "free-shipping"': RULES.replace('name = "free-shipping"', 'name = "plain"'),
        "weight = 2": RULES.replace("weight = 2", "weight = 0"),
        "holdout = 0.1": RULES.replace("holdout = 0.1", "holdout = 0.6"),
        'name = "plain"': RULES.replace('name = "plain"', 'name = "original"'),
    }[change]

    with pytest.raises(RulesError, match=words):
        parse_rules(broken, "rules.toml")
