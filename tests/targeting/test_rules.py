"""Rules files: validated with errors that name the entry, described by a JSON Schema kept
in step, reloaded without a restart, and message templates that never produce a broken
teaser."""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime.platform.errors import RulesError
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.rules import (
    DEFAULT_RULES,
    RULES_SCHEMA,
    default_rules,
    load_rules,
    parse_rules,
    rules_json_schema,
)
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
    ("unknown section", "[scoring]\n" + MINIMAL, "shop.toml: unknown key scoring"),
    ("a typo'd key", "[trigger]\nmin_scroe = 10\n" + MINIMAL, "trigger: unknown key min_scroe"),
    ("a key the rule's kind has no use for", '[[score]]\nid = "x"\nkind = "seconds_on_page"\n'
     'tiers = [[30, 15]]\npoints = 5\n' + MINIMAL, "score[0]: unknown key points"),
    ("unknown rule kind", '[[score]]\nid = "x"\nkind = "vibes"\npoints = 5\n' + MINIMAL,
     "score[0].kind: 'vibes' is not one of"),
    ("points not a number", '[[score]]\nid = "x"\nkind = "customer_id"\npoints = "5"\n' + MINIMAL,
     "score[0].points: must be an integer, got a string"),
    ("negative points", '[[score]]\nid = "x"\nkind = "customer_id"\npoints = -5\n' + MINIMAL,
     "score[0].points: must be an integer >= 0"),
    ("a blank id", '[[score]]\nid = " "\nkind = "customer_id"\n' + MINIMAL,
     "score[0].id: must be a non-empty string"),
    ("a utm rule on another parameter", '[[score]]\nid = "x"\nkind = "utm_present"\n'
     'field = "source"\n' + MINIMAL, "score[0].field: must name a utm_* parameter"),
    ("prefix rule without prefixes", '[[score]]\nid = "x"\nkind = "path_prefix"\npoints = 5\n'
     + MINIMAL, "score[0]: needs prefixes"),
    ("the same id twice", '[[score]]\nid = "x"\nkind = "customer_id"\npoints = 1\n'
     '[[score]]\nid = "x"\nkind = "customer_email"\npoints = 1\n' + MINIMAL, "used twice: x"),
    ("no templates", "[trigger]\nmin_score = 10\n", "shop.toml: needs template"),
    ("unknown situation", '[[template]]\nid = "t"\nsituation = "sunny"\ntext = "x"\n',
     "template[0].situation: 'sunny'"),
    ("the third template's situation", MINIMAL + MINIMAL.replace('"hi"', '"hey"')
     + '[[template]]\nid = "t"\nsituation = "rain"\ntext = "x"\n',
     "template[2].situation: 'rain' is not one of ['any', 'browsing',"),
    ("bad quiet hours", '[trigger]\nquiet_hours = "late"\n' + MINIMAL,
     "trigger.quiet_hours: 'late' is not like 09:00-18:00"),
    ("hours with a UTC offset", '[trigger]\nquiet_hours = "22:00+01:00-08:00"\n' + MINIMAL,
     "trigger.quiet_hours: '22:00+01:00-08:00' is not like 09:00-18:00"),
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


# Every key a rules file can have, each with a value of the right kind, in the tables it
# may sit in; each case below puts a wrong kind of TOML value in one key's place.
EVERY_KEY: dict[str, list[dict[str, str]]] = {
    "score": [
        {"id": '"page"', "kind": '"path_prefix"', "label": '"Page"', "points": "5",
         "prefixes": '["/chairs"]'},
        {"id": '"fb"', "kind": '"utm_equals"', "field": '"utm_source"', "values": '["fb"]'},
        {"id": '"time"', "kind": '"seconds_on_page"', "tiers": "[[30, 15]]"},
    ],
    "trigger": [
        {"min_score": "50", "min_page_views": "3", "critical_pages": '["/cart"]',
         "known_customer": "true", "cooldown_seconds": "300", "daily_cap": "3",
         "expires_in_seconds": "300", "business_hours": '"09:00-18:00"',
         "time_zone": '"Europe/Berlin"', "quiet_hours": '"22:00-08:00"'},
    ],
    "template": [
        {"id": '"hi"', "situation": '"any"', "text": '"Hi"', "fallback": '"Hello"',
         "sources": '["facebook"]', "only_on_section": "false"},
    ],
}  # fmt: skip
# The kind of value each key takes, outermost first; any key not here takes a string.
SHAPES: dict[str, tuple[str, ...]] = {
    "score": ("array", "table"), "trigger": ("table",), "template": ("array", "table"),
    "prefixes": ("array", "string"), "values": ("array", "string"),
    "critical_pages": ("array", "string"), "sources": ("array", "string"),
    "tiers": ("array", "array", "integer"), "known_customer": ("boolean",),
    "only_on_section": ("boolean",), "points": ("integer",), "min_score": ("integer",),
    "min_page_views": ("integer",), "cooldown_seconds": ("integer",), "daily_cap": ("integer",),
    "expires_in_seconds": ("integer",),
}  # fmt: skip
TOML_VALUES = {"string": '"x"', "integer": "7", "float": "1.5", "boolean": "true",
               "array": "[1, 2]", "table": "{ a = 1 }", "offset date-time": "1979-05-27T07:32:00Z",
               "local date": "1979-05-27", "local time": "07:32:00"}  # fmt: skip


def rules_text(every: dict[str, list[dict[str, str]]], top: dict[str, str]) -> str:
    lines = [f"{key} = {value}" for key, value in top.items()]
    for name, tables in every.items():
        for table in [] if name in top else tables:
            lines.append("[trigger]" if name == "trigger" else f"[[{name}]]")
            lines += [f"{key} = {value}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def misfits(shape: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """(kind, TOML value, where inside the key it is wrong): each wrong kind, at each depth."""
    for kind, value in TOML_VALUES.items():
        if kind != shape[0]:
            yield kind, value, ""
    for kind, value, where in misfits(shape[1:]) if len(shape) > 1 else ():
        # Two of each, so that a [seconds, points] pair is refused for its item, not its length.
        yield f"array of {kind}", f"[{value}, {value}]", f"[0]{where}"


def wrong_kinds() -> Iterator[tuple[str, str, str]]:
    """(the file, the path its error must name, the wrong kind), for every key and kind."""
    for name in EVERY_KEY:
        for kind, value, where in misfits(SHAPES[name]):
            yield rules_text(EVERY_KEY, {name: value}), f"{name}{where}", kind
    for name, tables in EVERY_KEY.items():
        for i, table in enumerate(tables):
            entry = name if name == "trigger" else f"{name}[{i}]"
            for key in table:
                for kind, value, where in misfits(SHAPES.get(key, ("string",))):
                    changed = [dict(t, **{key: value}) if t is table else t for t in tables]
                    text = rules_text({**EVERY_KEY, name: changed}, {})
                    yield text, f"{entry}.{key}{where}", kind


WRONG_KINDS = list(wrong_kinds())


def test_the_file_every_key_is_tried_in_is_valid() -> None:
    rules = parse_rules(rules_text(EVERY_KEY, {}), "every.toml")
    assert [r.kind for r in rules.score] == ["path_prefix", "utm_equals", "seconds_on_page"]


@pytest.mark.parametrize(
    "text,path", [c[:2] for c in WRONG_KINDS], ids=[f"{c[1]} = {c[2]}" for c in WRONG_KINDS]
)
def test_a_wrong_kind_of_value_is_refused_naming_its_key(text: str, path: str) -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(text, "shop.toml")
    assert refused.value.message.startswith(f"shop.toml: {path}: must be "), text


def test_the_committed_json_schema_is_the_one_the_rules_file_declares() -> None:
    committed = json.loads(RULES_SCHEMA.read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(rules_json_schema())), (
        f"{RULES_SCHEMA.name} is out of date; regenerate it with .venv/bin/python -c "
        "'from realtime.targeting.rules import write_rules_json_schema; write_rules_json_schema()'"
    )


@pytest.mark.parametrize("draft", ["Draft4Validator", "Draft7Validator"])
def test_an_editor_checking_the_schema_accepts_the_defaults_and_flags_a_typo(draft: str) -> None:
    # Taplo, behind most TOML editors, validates with JSON Schema drafts 4 to 7.
    validators = pytest.importorskip("jsonschema_rs")
    validator = getattr(validators, draft)(json.loads(RULES_SCHEMA.read_text(encoding="utf-8")))
    document = tomllib.loads(DEFAULT_RULES.read_text(encoding="utf-8"))
    assert validator.is_valid(document)
    document["trigger"]["min_scroe"] = 10
    assert not validator.is_valid(document)


def test_the_shipped_defaults_are_valid_and_complete() -> None:
    assert {r.id for r in RULES.score} == {
        "high_value_page",
        "utm_campaign",
        "facebook_traffic",
        "cpc_traffic",
        "known_customer",
        "customer_email",
        "time_on_page",
        "cart_adds",
    }
    assert set(RULES.events) == {"added_to_cart", "signed_up", "purchase"}
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
    ("returning customer",
     context(customer_id="12345", returning_customer=True, current_path="/"), "welcome_back",
     "🎉 Welcome back, customer #12345! Exclusive 30% off just for you!"),
    ("known customer on a first visit",
     context(customer_id="12345", returning_customer=False, current_path="/"),
     "customer_offer", "🎉 Hello, customer #12345! Exclusive 30% off just for you!"),
    ("known customer not yet looked up", context(customer_id="12345", current_path="/"),
     "customer_offer", "🎉 Hello, customer #12345! Exclusive 30% off just for you!"),
    ("social traffic", context(utm={"utm_source": "facebook"}, current_path="/"), "social_proof",
     "📱 Thanks for coming from Facebook! Join 1000+ happy customers with our exclusive social "
     "media discount!"),
    ("browsing a category", context(current_path="/chairs/office", paths=["/chairs/office"]),
     "browsing",
     "🪑 I see you're browsing chairs! Check out our ergonomic collection with 30% off!"),
    ("anything else", context(current_path="/about"), "welcome",
     "🎯 Looking for something? Have a look at our new arrivals!"),
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
