"""The experiment on the conversions panel, in a real Chromium against a real server whose
rules hold one template with one variant and half the sessions back: real sessions
qualify through POST /api/events, some convert, and the chart and its table show each
group's rate with its interval, each lift over the holdout, and "not enough data yet"
where the sample is short, all inside a phone's 375 px. Compose offers the template
wordings filled in for the visitor, and picking one fills the message."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)

from realtime.targeting.experiments import held_out, variant_for
from realtime.targeting.rules import parse_rules
from tests.support import event_time, rules_dir

from .conftest import (
    SCREENSHOTS,
    SITE_ID,
    LiveServer,
    new_operator,
    require_browser,
    sign_in,
    teaser_cli,
)

HOLDOUT = 0.5  # half the sessions held back: fewer are needed for 100 in each group
RULES = f"""
[trigger]
holdout = {HOLDOUT}

[[score]]
id = "shop"
kind = "path_prefix"
prefixes = ["/cart"]
points = 30
label = "Shop page"

[[template]]
id = "cart"
situation = "cart"
text = "Need a hand with your {{page_category}}?"
fallback = "Need a hand?"

[[template.variant]]
name = "shipping"
text = "Free shipping for {{utm_source}} visitors today"
fallback = "Free shipping today"

[[template]]
id = "welcome"
situation = "known_customer"
text = "Welcome back, customer {{customer_id}}!"
"""
CART = parse_rules(RULES, "rules.toml").templates[0]
# Sessions and conversions per group: each past the minimum of 100 sessions and 5 conversions.
PLAN = {"holdout": (110, 6), "original": (105, 12), "shipping": (105, 20)}
QUIET_SITE = "quiet_experiment_shop"
PHONE = {"width": 375, "height": 812}


def group_of(session: str) -> str:
    """The group the server will put a qualifying session in: the same hash it uses."""
    if held_out(SITE_ID, session, HOLDOUT):
        return "holdout"
    variant = variant_for(SITE_ID, session, CART)
    assert variant is not None
    return variant.name


def sessions_by_group() -> dict[str, list[str]]:
    wanted: dict[str, list[str]] = {group: [] for group in PLAN}
    while any(len(wanted[group]) < size for group, (size, _) in PLAN.items()):
        session = f"sess_{int(time.time() * 1000)}_{uuid.uuid4().hex[:9]}"
        chosen = wanted[group_of(session)]
        if len(chosen) < PLAN[group_of(session)][0]:
            chosen.append(session)
    return wanted


def post(client: httpx.Client, session: str, **fields: Any) -> None:
    body = {"sessionId": session, "siteId": SITE_ID, "type": "page_view", "path": "/", **fields}
    body["ts"] = event_time(time.perf_counter_ns())
    answer = client.post("/api/events", json=body)
    assert answer.status_code == 202, answer.text


@dataclass(frozen=True)
class Experiment:
    groups: dict[str, list[str]]
    composer: str  # told its source only, on a page that does not qualify


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()
    folder = Path(tmp_path_factory.mktemp("experiment"))
    rules = rules_dir(folder, SITE_ID, RULES)
    # One client posts every session's events: the per-IP event limit would refuse most.
    live = LiveServer(
        folder, TEASER_RULES_DIR=str(rules), TEASER_LIMIT_EVENTS_PER_IP_PER_SECOND="0"
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def experiment(server: LiveServer) -> Experiment:
    groups = sessions_by_group()
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for sessions in groups.values():
            for session in sessions:
                post(client, session, path="/cart")  # a critical page: the trigger decides
        for group, (_, conversions) in PLAN.items():
            for session in groups[group][:conversions]:
                post(client, session, type="conversion", path="/thanks", value=10)
        composer = f"sess_{int(time.time() * 1000)}_{uuid.uuid4().hex[:9]}"
        post(client, composer, path="/about", utm={"utm_source": "facebook"})
    return Experiment(groups, composer)


@pytest.fixture(scope="module")
def account(server: LiveServer) -> tuple[str, str]:
    return new_operator(server)


def signed_in_page(
    browser: Browser, server: LiveServer, account: tuple[str, str], viewport: dict[str, int]
) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    sign_in(page, server, account)
    yield page
    context.close()


@pytest.fixture
def desktop(
    browser: Browser, server: LiveServer, account: tuple[str, str], experiment: Experiment
) -> Iterator[Page]:
    yield from signed_in_page(browser, server, account, {"width": 1280, "height": 900})


@pytest.fixture
def phone(
    browser: Browser, server: LiveServer, account: tuple[str, str], experiment: Experiment
) -> Iterator[Page]:
    yield from signed_in_page(browser, server, account, PHONE)


def picture(page: Page) -> None:
    """The experiment section as drawn at this width, for a person to look at."""
    size = page.viewport_size
    assert size is not None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".experiment").screenshot(
        path=SCREENSHOTS / f"dashboard-{size['width']}-experiment.png"
    )


def table_rows(page: Page, groups: int = 5) -> dict[str, dict[str, str]]:
    expect(page.locator("#experiment-table tbody tr")).to_have_count(groups)
    rows: list[dict[str, Any]] = page.locator("#experiment-table tbody tr").evaluate_all(
        """(rows) => rows.map((row) => ({ arm: row.dataset.arm, key: row.dataset.key,
            cells: [...row.children].map((cell) => cell.textContent) }))"""
    )
    names = ("group", "sessions", "converted", "rate", "interval", "lift")
    return {row["key"]: dict(zip(names, row["cells"], strict=True)) for row in rows}


def drawn(page: Page) -> dict[str, Any]:
    chart = page.locator("#experiment-chart svg")
    expect(chart).to_be_visible()
    found: dict[str, Any] = chart.evaluate("""(svg) => ({
        role: svg.getAttribute('role'), label: svg.getAttribute('aria-label'),
        title: svg.querySelector(':scope > title').textContent,
        scale: svg.getBoundingClientRect().width / svg.viewBox.baseVal.width,
        names: [...svg.querySelectorAll('text.group-name')].map((text) => text.textContent),
        whiskers: [...svg.querySelectorAll('g.estimate')].map((g) => g.classList[1]),
        noData: [...svg.querySelectorAll('text.no-data')].map((text) => text.textContent),
        band: svg.querySelectorAll('rect.band').length,
    })""")
    return found


def test_the_chart_shows_each_group_with_its_interval_over_the_holdout_s_band(
    desktop: Page,
) -> None:
    found = drawn(desktop)
    picture(desktop)

    assert found["role"] == "img"
    assert found["names"] == [
        "cart · original",
        "cart · shipping",
        "All auto teasers",
        "Manual",
        "Holdout",
    ]
    assert sorted(found["whiskers"]) == ["auto", "holdout", "variant", "variant"]
    assert found["noData"] == ["not enough data yet"]  # the manual group: nobody sent one
    assert found["band"] == 2  # the holdout's interval across the rows, and in the legend
    for name in found["names"]:
        assert name in found["label"] and name in found["title"]
    assert "Manual: not enough data yet (0 sessions, 0 converted)" in found["label"]
    assert abs(found["scale"] - 1) < 0.02, found  # drawn at its shown width


def test_the_table_gives_counts_intervals_and_each_lift_over_the_holdout(desktop: Page) -> None:
    rows = table_rows(desktop)
    method = desktop.locator("#experiment-method").inner_text()
    interval = re.compile(r"^\d+(\.\d)?%–\d+(\.\d)?%$")
    lift = re.compile(r"^[+−]\d+\.\d points \([+−]\d+ %\)95 %: [+−]\d+\.\d to [+−]\d+\.\d points$")

    assert {key: (row["sessions"], row["converted"]) for key, row in rows.items()} == {
        "cart/original": ("105", "12"),
        "cart/shipping": ("105", "20"),
        "auto": ("210", "32"),
        "manual": ("0", "0"),
        "holdout": ("110", "6"),
    }
    for key in ("cart/original", "cart/shipping", "auto", "holdout"):
        assert interval.match(rows[key]["interval"]), rows[key]
    for key in ("cart/original", "cart/shipping", "auto"):
        assert lift.match(rows[key]["lift"]), rows[key]
    assert rows["cart/original"]["rate"].startswith("11.4% ")  # 12 of 105, then its interval
    assert rows["manual"]["rate"] == "–"
    assert rows["manual"]["interval"].startswith("not enough data yet (needs 100 sessions")
    assert rows["holdout"]["lift"] == "– (the baseline)"
    assert "by session" in method and "Wilson" in method and "Newcombe" in method
    assert desktop.locator(".experiment button").count() == 0  # nothing to stop a test early


def test_at_375_px_nothing_overflows_and_the_text_stays_12_px(phone: Page) -> None:
    found = drawn(phone)
    rows = table_rows(phone)
    measured: dict[str, Any] = phone.evaluate("""() => {
        const svg = document.querySelector('#experiment-chart svg');
        const box = svg.getBoundingClientRect();
        const outside = [...svg.querySelectorAll('text')].filter((text) => {
            const own = text.getBoundingClientRect();
            return own.left < box.left - 0.5 || own.right > box.right + 0.5;
        }).map((text) => text.textContent);
        const table = document.querySelector('#experiment-table').closest('.table-scroll');
        return { scroll: document.documentElement.scrollWidth, inner: innerWidth, outside,
                 table: [table.scrollWidth, table.clientWidth],
                 font: getComputedStyle(svg.querySelector('text.group-name')).fontSize };
    }""")
    picture(phone)

    assert measured["scroll"] <= measured["inner"], measured
    assert measured["outside"] == [], measured
    assert measured["table"][0] <= measured["table"][1], measured  # no sideways scroll in it
    assert measured["font"] == "12px" and abs(found["scale"] - 1) < 0.02, (measured, found)
    assert re.search(r"\d%–\d", rows["holdout"]["rate"])  # the interval under the rate
    assert phone.locator("#experiment-table td.interval").first.is_hidden()


def test_a_period_with_no_automatic_decision_says_so(
    browser: Browser, server: LiveServer, experiment: Experiment
) -> None:
    teaser_cli(server, "site", "add", QUIET_SITE)
    account = new_operator(server, QUIET_SITE)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, server, account, QUIET_SITE)
        said = page.locator("#experiment-chart")
        expect(said).to_contain_text("No automatic decision in this period")
        rows = table_rows(page, 3)  # no wording was sent: auto, manual, holdout
    finally:
        context.close()

    assert all(row["sessions"] == "0" for row in rows.values()), rows


def test_a_server_that_reports_no_experiment_is_said_to(desktop: Page, server: LiveServer) -> None:
    def older(route: Any) -> None:
        # An older server's answer: the same report with no `experiment` in it.
        answer = route.fetch()
        report = answer.json()
        report.pop("experiment")
        route.fulfill(response=answer, json=report)

    desktop.route("**/api/dashboard/conversions*", older)
    desktop.click("#conversion-refresh")

    expect(desktop.locator("#experiment-chart")).to_have_text(
        "This server does not report variants and the holdout."
    )
    expect(desktop.locator("#experiment-table")).to_be_hidden()


def test_compose_lists_the_wordings_and_picking_one_fills_the_message(
    desktop: Page, experiment: Experiment
) -> None:
    row = desktop.locator(f'#feed .row[data-session="{experiment.composer}"][data-kind="event"]')
    row.first.get_by_role("button", name="Send Custom Teaser").click()
    picker = desktop.get_by_label("Start from a wording")
    expect(picker.locator("option")).to_have_count(4)
    options: list[dict[str, Any]] = picker.locator("option").evaluate_all(
        "(options) => options.map((o) => ({ text: o.textContent, disabled: o.disabled }))"
    )
    picker.select_option(label="cart · shipping")
    message = desktop.locator("#compose-message")

    assert options == [
        {"text": "Write your own", "disabled": False},
        {"text": "cart · original", "disabled": False},
        {"text": "cart · shipping", "disabled": False},
        {"text": "welcome (nothing to fill it in with for this visitor)", "disabled": True},
    ]
    expect(message).to_have_value("Free shipping for Facebook visitors today")
    expect(desktop.locator("#compose-count")).to_have_text("41 / 500 characters")
    message.press("End")
    message.type("!")  # still the operator's to edit, and counted
    expect(desktop.locator("#compose-count")).to_have_text("42 / 500 characters")
    picker.select_option(label="cart · original")
    expect(message).to_have_value("Need a hand?")  # no section known: the fallback
    with desktop.expect_response("**/api/dashboard/teasers") as sent:
        desktop.click("#compose-send")
    teaser = sent.value.json()

    assert (teaser["priority"], teaser["message"]) == ("manual", "Need a hand?")
