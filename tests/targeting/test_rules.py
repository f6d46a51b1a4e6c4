"""Rules files: validated with errors that name the entry, reloaded without a restart,
and message templates that never produce a broken teaser."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from realtime.platform.errors import RulesError
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.rules import DEFAULT_RULES, default_rules, load_rules
from realtime.targeting.scoring import score
from realtime.targeting.templates import TeaserContext, TemplateGenerator, render
from realtime.targeting.visitors import VisitorState

RULES = default_rules()
MINIMAL = '[[template]]\nid = "hi"\nsituation = "any"\ntext = "Hi"\n'


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BROKEN: list[tuple[str, str, str]] = [
    ("not TOML", "[[score]\nid=", "not valid TOML"),
    ("unknown section", "[scoring]\n" + MINIMAL, "unknown section(s) scoring"),
    ("unknown rule kind", '[[score]]\nid = "x"\nkind = "vibes"\npoints = 5\n' + MINIMAL,
     "score[0].kind: 'vibes' is not one of"),
    ("points not a number", '[[score]]\nid = "x"\nkind = "customer_id"\npoints = "5"\n' + MINIMAL,
     "score[0].points: must be an integer"),
    ("prefix rule without prefixes", '[[score]]\nid = "x"\nkind = "path_prefix"\npoints = 5\n'
     + MINIMAL, "score[0]: a 'path_prefix' rule needs prefixes"),
    ("the same id twice", '[[score]]\nid = "x"\nkind = "customer_id"\npoints = 1\n'
     '[[score]]\nid = "x"\nkind = "customer_email"\npoints = 1\n' + MINIMAL, "used twice: x"),
    ("no templates", "[trigger]\nmin_score = 10\n", "needs at least one [[template]]"),
    ("unknown situation", '[[template]]\nid = "t"\nsituation = "sunny"\ntext = "x"\n',
     "template[0].situation: 'sunny'"),
    ("bad quiet hours", '[trigger]\nquiet_hours = "late"\n' + MINIMAL,
     "trigger.quiet_hours: 'late' is not like 09:00-18:00"),
    ("business hours without a time zone", '[trigger]\nbusiness_hours = "09:00-18:00"\n'
     + MINIMAL, "business_hours needs the shop's time_zone"),
    ("unknown time zone", '[trigger]\ntime_zone = "Mars/Olympus"\n' + MINIMAL,
     "'Mars/Olympus' is not a known time zone"),
]  # fmt: skip


@pytest.mark.parametrize("text,message", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_broken_rules_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "shop.toml", text)
    with pytest.raises(RulesError) as refused:
        load_rules(path)
    assert message in refused.value.message
    assert str(path) in refused.value.message


def test_the_shipped_defaults_are_valid_and_complete() -> None:
    assert {r.id for r in RULES.score} == {
        "high_value_page",
        "utm_campaign",
        "facebook_traffic",
        "cpc_traffic",
        "known_customer",
        "customer_email",
        "time_on_page",
    }
    assert RULES.trigger.cooldown_seconds == 300
    assert load_rules(DEFAULT_RULES) == RULES


def test_a_site_file_is_picked_up_and_reloaded_without_a_restart(tmp_path: Path) -> None:
    book = RuleBook(tmp_path, check_interval=0)
    assert book.for_site("shop") is book.defaults

    write(tmp_path / "shop.toml", "[trigger]\nmin_score = 10\n" + MINIMAL)
    assert book.for_site("shop").trigger.min_score == 10

    time.sleep(0.01)
    path = write(tmp_path / "shop.toml", "[trigger]\nmin_score = 20\n" + MINIMAL)
    os.utime(path, (time.time() + 1, time.time() + 1))
    assert book.for_site("shop").trigger.min_score == 20
    assert book.for_site("other").trigger.min_score == 50


def test_a_broken_edit_keeps_the_last_good_rules(tmp_path: Path) -> None:
    book = RuleBook(tmp_path, check_interval=0)
    path = write(tmp_path / "shop.toml", "[trigger]\nmin_score = 10\n" + MINIMAL)
    assert book.for_site("shop").trigger.min_score == 10

    write(path, "[trigger\nbroken")
    os.utime(path, (time.time() + 2, time.time() + 2))
    assert book.for_site("shop").trigger.min_score == 10


def context(**facts: object) -> TeaserContext:
    state = VisitorState()
    for name, value in facts.items():
        setattr(state, name, value)
    return TeaserContext(state, score(state, RULES), RULES)


SITUATIONS: list[tuple[str, TeaserContext, str, str]] = [
    ("checkout", context(current_path="/checkout", paths=["/checkout"]), "checkout_assistance",
     "💳 Need help completing your order? I'm here to assist!"),
    ("cart without an item count falls back",
     context(current_path="/cart", paths=["/cart"]), "cart_urgency",
     "🛍️ Items in your cart! Don't miss our limited-time offers!"),
    ("known customer", context(customer_id="12345", current_path="/"), "welcome_back",
     "🎉 Welcome back, customer #12345! Exclusive 30% off just for you!"),
    ("social traffic", context(utm={"utm_source": "facebook"}, current_path="/"), "social_proof",
     "📱 Thanks for coming from Facebook! Join 1000+ happy customers with our exclusive social "
     "media discount!"),
    ("browsing a category", context(current_path="/chairs/office", paths=["/chairs/office"]),
     "browsing",
     "🪑 I see you're browsing chairs! Check out our ergonomic collection with 30% off!"),
    ("anything else", context(current_path="/about"), "welcome",
     "🎯 Welcome! Pick up where you left off with our new arrivals!"),
]  # fmt: skip


@pytest.mark.parametrize(
    "ctx,template,text", [c[1:] for c in SITUATIONS], ids=[c[0] for c in SITUATIONS]
)
async def test_the_first_template_whose_situation_applies_is_used(
    ctx: TeaserContext, template: str, text: str
) -> None:
    generated = await TemplateGenerator().generate(ctx)
    assert generated is not None
    assert (generated.template_id, generated.text) == (template, text)


async def test_a_browsing_teaser_is_bound_to_its_section() -> None:
    generated = await TemplateGenerator().generate(
        context(current_path="/chairs/office", paths=["/chairs/office"])
    )
    assert generated is not None and generated.only_on_path == "/chairs*"


@pytest.mark.parametrize("text,variables,expected", [
    ("Hi {customer_id}!", {"customer_id": "42"}, "Hi 42!"),
    ("Hi {customer_id}!", {}, None),
    ("Hi {0}", {"0": "x"}, None),
    ("Hi {customer_id.__class__}", {"customer_id": "42"}, None),
    ("Hi {customer_id!r}", {"customer_id": "42"}, None),
    ("Hi {customer_id:>40}", {"customer_id": "42"}, None),
    ("unbalanced {", {}, None),
    ("", {}, None),
])  # fmt: skip
def test_rendering_never_crashes_and_refuses_what_it_cannot_fill(
    text: str, variables: dict[str, str], expected: str | None
) -> None:
    assert render(text, variables) == expected


async def test_a_very_long_detail_is_cut_short_in_the_message() -> None:
    generated = await TemplateGenerator().generate(context(customer_id="9" * 500))
    assert generated is not None and len(generated.text) < 200
