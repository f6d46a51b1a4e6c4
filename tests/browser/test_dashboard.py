"""The operator dashboard in a real headless Chromium against a real server process:
sign in, watch events arrive live, filter, send a teaser to a visitor's open /demo page,
export, scroll 10,000 events, and never see another site's data."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)


from .conftest import (
    API_KEY,
    ARTIFACTS,
    SITE_ID,
    LiveServer,
    new_operator,
    post_event,
    sign_in,
    teaser_cli,
)

SEED_UTM = {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "chairs_sale"}
SESSION_ID = re.compile(r"^sess_\d{13}_[a-z0-9]{9}$")
KEY_HEADERS = {"X-API-Key": API_KEY, "X-Site-ID": SITE_ID}
# Milliseconds from a jump to the end of the feed until the second frame after it is painted.
SCROLL_TO_END = """() => new Promise((done) => {
    const feed = document.getElementById('feed');
    const started = performance.now();
    feed.scrollTop = feed.scrollHeight;
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - started)));
})"""


@pytest.fixture(scope="module")
def account(server: LiveServer) -> tuple[str, str]:
    """One operator of the demo site for the module (each `teaser` run costs a second)."""
    return new_operator(server)


def card(page: Page, metric: str) -> str:
    return page.locator(f'.card[data-metric="{metric}"] .value').inner_text()


def rows(page: Page) -> list[dict[str, str]]:
    """The feed rows in the DOM, top to bottom (only those in and near the view exist)."""
    found: list[dict[str, str]] = page.evaluate("""() =>
        [...document.querySelectorAll('#feed .row')]
          .map((row) => ({ ...row.dataset, top: row.getBoundingClientRect().top,
                           text: row.innerText }))
          .sort((a, b) => a.top - b.top)""")
    return found


def search(page: Page, text: str) -> None:
    page.fill("#search", text)
    expect(page.locator("#feed-status")).not_to_have_text("Loading…")
    page.wait_for_timeout(400)  # the search waits 250 ms for more typing


def test_a_posted_event_appears_live_and_the_cards_change_without_a_reload(
    page: Page, server: LiveServer, account: tuple[str, str]
) -> None:
    sign_in(page, server, account)
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator('.card[data-metric="totalEvents"] .value')).not_to_have_text("–")
    total = int(card(page, "totalEvents").replace(",", ""))
    session = f"sess_{int(time.time() * 1000)}_{uuid.uuid4().hex[:9]}"

    post_event(server, session, path="/chairs", utm=SEED_UTM, customerId="cust-1")
    row = page.locator(f'#feed .row[data-session="{session}"][data-kind="event"]')
    expect(row).to_be_visible(timeout=1000)
    expect(page.locator('.card[data-metric="totalEvents"] .value')).to_have_text(str(total + 1))

    assert page.evaluate("window.stillTheSamePage") is True
    assert "🤖 AI" in row.inner_text() and "/chairs" in row.inner_text()
    assert "facebook / chairs_sale" in row.inner_text() and "cust-1" in row.inner_text()
    row.click()  # the side panel explains the score and shows the journey
    expect(page.locator("#side .rules").first).to_contain_text("High-value page")
    expect(page.locator("#journey .timeline")).to_contain_text("Viewed /chairs")


def test_the_filters_and_the_search_narrow_the_feed(
    page: Page, server: LiveServer, account: tuple[str, str]
) -> None:
    tag = uuid.uuid4().hex[:10]
    for path, utm in (("/about", {}), ("/chairs", SEED_UTM), ("/blog", {"utm_campaign": "x"})):
        post_event(server, f"sess_{tag}_{path.strip('/')}", path=path, utm=utm)
    sign_in(page, server, account)
    search(page, tag)

    def api(**params: str) -> list[str]:
        answer = httpx.get(
            f"{server.base_url}/api/events",
            headers=KEY_HEADERS,
            timeout=5,
            params={"q": tag, "period": "24h", **params},
        )
        return [item["key"] for item in answer.json()["events"]]

    shown: dict[str, list[dict[str, str]]] = {"all": rows(page)}
    for name, button in (
        ("ai", "AI Triggered"),
        ("high_score", "High Score"),
        ("all", "All Events"),
    ):
        page.get_by_role("button", name=button).click()
        expect(page.locator("#feed .row")).to_have_count(len(api(filter=name)))
        shown[name] = rows(page)
    search(page, f"sess_{tag}_about")
    expect(page.locator("#feed .row")).to_have_count(1)

    assert {row["session"] for row in shown["all"]} == {
        f"sess_{tag}_{p}" for p in ("about", "chairs", "blog")
    }
    for name in ("all", "ai", "high_score"):
        assert [row["key"] for row in shown[name]] == api(filter=name)
    assert 0 < len(shown["high_score"]) < len(shown["ai"]) < len(shown["all"])
    assert all("🤖" in row["text"] for row in shown["ai"])
    assert {row["session"] for row in shown["high_score"]} == {f"sess_{tag}_chairs"}


def test_send_custom_teaser_reaches_an_open_demo_page_and_shows_it_delivered(
    page: Page, browser: Browser, server: LiveServer, account: tuple[str, str]
) -> None:
    sign_in(page, server, account)
    visitor = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        demo = visitor.new_page()
        demo.goto(f"{server.base_url}/demo")
        expect(demo.locator("#session-id")).to_have_text(SESSION_ID)
        expect(demo.locator("#transport")).to_have_text("websocket")
        session = demo.locator("#session-id").inner_text()

        row = page.locator(f'#feed .row[data-session="{session}"][data-kind="event"]').first
        expect(row).to_be_visible(timeout=2000)
        row.get_by_role("button", name="Send Custom Teaser").click()
        dialog = page.locator("#compose")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#compose-session")).to_have_text(session)

        page.fill("#compose-message", "x" * 101)
        expect(page.locator("#compose-count")).to_have_class(re.compile(r"\bwarn\b"))
        page.fill("#compose-message", "x" * 501)
        expect(page.locator("#compose-count")).to_have_class(re.compile(r"\bover\b"))
        expect(page.locator("#compose-send")).to_be_disabled()
        text = "🎉 Special offer just for you! 20% off chairs today!"
        page.fill("#compose-message", text)
        expect(page.locator("#compose-count")).to_have_text(f"{len(text)} / 500 characters")
        page.click("#compose-send")

        expect(demo.locator("teaser-widget .m")).to_have_text(text, timeout=2000)
        expect(page.locator("#compose-status")).to_contain_text("Delivered by WebSocket")
        page.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard-send.png")
        page.click("#compose-close")
        sent_row = page.locator(f'#feed .row[data-session="{session}"][data-kind="teaser_sent"]')
        sent_row = sent_row.filter(has_text="Manual teaser")
        expect(sent_row.locator(".tag")).to_have_text("⚡ socket")
        page.wait_for_timeout(600)  # the cards' highlight fades
        page.screenshot(path=ARTIFACTS / "dashboard-live.png")
    finally:
        visitor.close()


def test_the_json_export_downloads_the_rows_the_api_gives(
    page: Page, server: LiveServer, account: tuple[str, str]
) -> None:
    tag = uuid.uuid4().hex[:10]
    for path in ("/chairs", "/about"):
        post_event(server, f"sess_{tag}{path.replace('/', '_')}", path=path, utm=SEED_UTM)
    sign_in(page, server, account)
    search(page, tag)

    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(download.value.path().read_text())
    api = httpx.get(
        f"{server.base_url}/api/events",
        headers=KEY_HEADERS,
        params={"q": tag, "period": "24h", "limit": 500},
        timeout=5,
    ).json()

    assert download.value.suggested_filename.startswith(f"teaser-{SITE_ID}-all-")
    assert len(exported) == 3  # two events and an automatic teaser
    assert exported == api["events"]


def test_ten_thousand_events_load_page_by_page_and_scroll_smoothly(
    page: Page, server_factory: Callable[..., LiveServer]
) -> None:
    server = server_factory()
    database = server.env["DATABASE_URL"].split("///", 1)[1]
    now = int(time.time() * 1000)
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO webhook_events_internal (site_id, session_id, type, payload, score,"
            " ai_triggered, explanation, created_at) VALUES (?, ?, 'page_view', ?, ?, ?, '{}', ?)",
            [
                (
                    SITE_ID,
                    f"sess_bulk_{i:05d}",
                    json.dumps({"path": f"/p/{i}"}),
                    i % 100,
                    i % 7 == 0,
                    now - i * 10,
                )
                for i in range(10_000)
            ],
        )
    sign_in(page, server, new_operator(server))
    expect(page.locator("#feed-status")).to_contain_text("items loaded")

    frames: list[float] = []
    while "all of them" not in page.locator("#feed-status").inner_text():
        frames.append(page.evaluate(SCROLL_TO_END))
        page.wait_for_timeout(30)

    assert page.locator("#feed-status").inner_text().startswith("10,000 items loaded")
    assert page.locator("#feed .row").count() < 60  # only what is in view exists
    assert rows(page)[-1]["session"] == "sess_bulk_09999"
    assert max(frames) < 250, frames


def test_an_operator_of_another_site_sees_and_reaches_only_that_site(
    page: Page, server: LiveServer
) -> None:
    other = f"shop_{uuid.uuid4().hex[:6]}"
    teaser_cli(server, "site", "add", other)
    sign_in(page, server, new_operator(server, other), site=other)
    ours, theirs = f"sess_{uuid.uuid4().hex[:12]}", f"sess_{uuid.uuid4().hex[:12]}"

    post_event(server, ours, path="/chairs", utm=SEED_UTM)
    post_event(server, theirs, site=other, path="/about")
    expect(page.locator(f'#feed .row[data-session="{theirs}"]')).to_have_count(1, timeout=1000)
    page.wait_for_timeout(500)
    seen = page.evaluate(
        """async (session) => {
        const feed = await (await fetch('/api/events?q=' + session)).json();
        const send = await fetch('/api/dashboard/teasers', { method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-Site-ID': 'woodstock_outlet' },
            body: JSON.stringify({ sessionId: session, message: 'Hi' }) });
        return { rows: feed.events.length, send: send.status };
    }""",
        ours,
    )

    assert page.locator(f'#feed .row[data-session="{ours}"]').count() == 0
    assert seen == {"rows": 0, "send": 401}
