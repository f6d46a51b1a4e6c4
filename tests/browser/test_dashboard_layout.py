"""The dashboard at a phone's, a tablet's and a desktop's size, in a real Chromium against a
real server: nothing runs off the side, sign out and the period are in reach, sessions that
share a millisecond read differently and carry what they said before, the journey opens in
view, an empty search says so inside the feed, compose tells whether the visitor is there
and offers another send, and no tag is cut. Each run leaves a picture of each size."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

try:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)

from .conftest import API_KEY, SCREENSHOTS, SITE_ID, LiveServer, new_operator, post_event, sign_in

VIEWPORTS = {"phone": (390, 844), "tablet": (768, 1024), "desktop": (1440, 900)}
DRAWER_BELOW = 1200  # px: narrower than this, the side panel is a drawer (dashboard.css)
KEY_HEADERS = {"X-API-Key": API_KEY, "X-Site-ID": SITE_ID}
# Whether an element lies inside every box that clips it, up to and including its feed row
# (the feed itself clips the rows drawn just beyond its edges, as it should).
INSIDE_CLIPS = """(element) => {
    const box = element.getBoundingClientRect();
    const row = element.closest('.row');
    for (let up = element.parentElement; up && row.contains(up); up = up.parentElement) {
        const style = getComputedStyle(up);
        if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
        const clip = up.getBoundingClientRect();
        if (box.left < clip.left - 0.5 || box.right > clip.right + 0.5
            || box.top < clip.top - 0.5 || box.bottom > clip.bottom + 0.5) return false;
    }
    return true;
}"""


@dataclass(frozen=True)
class Visitors:
    """Two sessions born in the same millisecond; the first told its source, customer and
    time zone on its first event only, and was sent a teaser it was shown."""

    told: str
    quiet: str
    demo: str  # the /demo page's session, with its socket open all module long


@pytest.fixture(scope="module")
def account(server: LiveServer) -> tuple[str, str]:
    return new_operator(server)


@pytest.fixture(scope="module")
def demo(browser: Browser, server: LiveServer) -> Iterator[Page]:
    visitor = browser.new_context(viewport={"width": 1000, "height": 700})
    page = visitor.new_page()
    page.goto(f"{server.base_url}/demo")
    expect(page.locator("#transport")).to_have_text("websocket")
    yield page
    visitor.close()


def send_teaser(server: LiveServer, session: str, message: str) -> str:
    answer = httpx.put(
        f"{server.base_url}/api/teaser-messages",
        headers=KEY_HEADERS,
        json={"sessionId": session, "message": message, "priority": "manual", "expiresIn": 300000},
        timeout=5,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.fixture(scope="module")
def visitors(server: LiveServer, demo: Page) -> Visitors:
    millisecond = int(time.time() * 1000)
    told, quiet = (f"sess_{millisecond}_{uuid.uuid4().hex[:9]}" for _ in range(2))
    post_event(
        server,
        told,
        utm={"utm_source": "facebook", "utm_campaign": "chairs_sale"},
        customerId="12345",
        timeZone="Europe/Berlin",
    )
    post_event(server, quiet, path="/about")
    post_event(server, told, path="/chairs", title="Chairs")
    teaser = send_teaser(server, told, "After restarting the app, your basket is still here")
    post_event(server, told, type="teaser_shown", path="/chairs", teaserId=teaser)
    session = demo.locator("#session-id").inner_text()
    send_teaser(server, session, "Hello from the layout tests")  # delivered by its socket
    expect(demo.locator("teaser-widget .m")).to_have_text("Hello from the layout tests")
    return Visitors(told, quiet, session)


@pytest.fixture(scope="module", params=list(VIEWPORTS), ids=list(VIEWPORTS))
def signed_in(
    request: pytest.FixtureRequest,
    browser: Browser,
    server: LiveServer,
    account: tuple[str, str],
    visitors: Visitors,
) -> Iterator[BrowserContext]:
    """One signed-in browser per viewport; each test opens its own page in it."""
    width, height = VIEWPORTS[request.param]
    context = browser.new_context(
        viewport={"width": width, "height": height},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    sign_in(context.new_page(), server, account)
    yield context
    context.close()


@pytest.fixture
def page(signed_in: BrowserContext, server: LiveServer) -> Iterator[Page]:
    page = signed_in.new_page()
    page.goto(f"{server.base_url}/dashboard")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#feed .row").first).to_be_visible()
    yield page
    page.close()


def width(page: Page) -> int:
    size = page.viewport_size
    assert size is not None
    return size["width"]


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    """The whole page for the overview; what the operator sees now for the rest."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{width(page)}-{name}.png"
    page.screenshot(path=path, full_page=full_page)


def no_sideways_scroll(page: Page) -> dict[str, int]:
    measured: dict[str, int] = page.evaluate(
        "() => ({ scroll: document.documentElement.scrollWidth, inner: innerWidth })"
    )
    return measured


def in_viewport(page: Page, locator: Locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


def row(page: Page, session: str, kind: str = "event") -> Locator:
    return page.locator(f'#feed .row[data-session="{session}"][data-kind="{kind}"]')


def test_nothing_runs_off_the_side_and_sign_out_and_the_period_are_in_reach(page: Page) -> None:
    expect(page.locator("#conversion-chart svg")).to_be_visible()
    page.wait_for_timeout(700)  # the cards' highlight fades before the picture
    screenshot(page, "overview", full_page=True)
    page_width = no_sideways_scroll(page)
    # The feed's head and rows share one grid that fits: nothing in it scrolls sideways.
    feed_width = page.evaluate("""() => [...document.querySelectorAll('#feed, #feed .row')]
        .filter((box) => box.scrollWidth > box.clientWidth).length""")
    reach = {}
    for control in ("#sign-out", "#sign-out-everywhere", "#period", "#search"):
        page.locator(control).click(trial=True)  # visible, steady, and nothing covers it
        reach[control] = in_viewport(page, page.locator(control))

    assert page_width["scroll"] <= page_width["inner"], page_width
    assert feed_width == 0
    assert all(reach.values()), reach


def test_sessions_of_one_millisecond_read_differently_and_say_what_they_said_before(
    page: Page, visitors: Visitors
) -> None:
    told, quiet = row(page, visitors.told).first, row(page, visitors.quiet).first
    expect(told).to_contain_text("/chairs")  # the newest row, which named no source itself
    labels = {
        session: (
            line.locator(".session").inner_text(),
            line.locator(".session").get_attribute("title"),
        )
        for session, line in ((visitors.told, told), (visitors.quiet, quiet))
    }
    prefix = visitors.told.rsplit("_", 1)[0] + "_"  # sess_<the same millisecond>_

    assert visitors.quiet.startswith(prefix)
    assert labels[visitors.told][0] != labels[visitors.quiet][0]
    for session, (label, title) in labels.items():
        assert title == session and label in session and not label.startswith(prefix), labels
    later = told.inner_text()
    assert "facebook" in later and "#12345" in later and "Berlin time" in later, later


def test_the_journey_opens_in_view_from_an_event_whose_id_copies_whole(
    page: Page, visitors: Visitors
) -> None:
    page.evaluate("window.scrollTo(0, 200)")  # the page need not be at its top
    row(page, visitors.told).first.locator("time").click()
    details = page.locator("#details")
    expect(details).to_contain_text("This event")
    expect(details).to_contain_text("facebook")  # the session's source, not "(direct)"
    details.get_by_role("button", name="Copy the session id").click()
    expect(details.locator(".copied")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    page.get_by_role("tab", name="Journey").click()
    heading = page.locator("#journey h2")
    first_step = page.locator("#journey .timeline li").first
    expect(first_step).to_be_visible()
    screenshot(page, "journey")
    shown = {"heading": in_viewport(page, heading), "first step": in_viewport(page, first_step)}
    scroll = no_sideways_scroll(page)
    if width(page) < DRAWER_BELOW:
        page.keyboard.press("Escape")
        expect(page.locator("#side")).to_be_hidden()

    assert copied == visitors.told
    assert heading.inner_text().startswith("Session journey")
    assert shown == {"heading": True, "first step": True}
    assert scroll["scroll"] <= scroll["inner"], scroll


def test_a_search_with_no_match_says_so_inside_the_feed_and_clears(page: Page) -> None:
    missing = f"nobody-{uuid.uuid4().hex[:8]}"
    page.fill("#search", missing)
    empty = page.locator("#feed-empty")
    expect(empty).to_contain_text(f"No matches for “{missing}”")
    feed, said = (
        page.locator("#feed").bounding_box(),
        empty.get_by_text("No matches").bounding_box(),
    )
    page.get_by_role("button", name="Clear search").click()
    expect(page.locator("#feed .row").first).to_be_visible()

    assert feed is not None and said is not None
    assert feed["y"] <= said["y"] and said["y"] + said["height"] <= feed["y"] + feed["height"]
    assert feed["x"] <= said["x"] and said["x"] + said["width"] <= feed["x"] + feed["width"]
    assert page.locator("#search").input_value() == ""


def test_compose_says_whether_the_visitor_is_there_and_offers_another_send(
    page: Page, visitors: Visitors, demo: Page
) -> None:
    presence = page.locator("#compose-presence")
    row(page, visitors.quiet).first.get_by_role("button", name="Send Custom Teaser").click()
    expect(presence).to_have_attribute("data-state", "gone")
    gone = presence.inner_text()
    page.click("#compose-close")

    row(page, visitors.demo).first.get_by_role("button", name="Send Custom Teaser").click()
    expect(presence).to_have_attribute("data-state", "socket")
    online = presence.inner_text()
    message = f"Layout test at {width(page)} px"
    page.fill("#compose-message", message)
    dialog = page.locator("#compose").bounding_box()
    page.click("#compose-send")
    expect(demo.locator("teaser-widget .m")).to_have_text(message)
    expect(page.locator("#compose-status")).to_contain_text("Delivered by WebSocket")
    screenshot(page, "compose")
    page.get_by_role("button", name="Send another").click()

    assert re.match(r"○ Not online: gone for \d+ (s|min)\b", gone), gone
    assert online.startswith("● Online, socket open"), online
    assert dialog is not None and dialog["x"] >= 0 and dialog["x"] + dialog["width"] <= width(page)
    expect(page.locator("#compose-message")).to_have_value("")
    expect(page.locator("#compose-message")).to_be_focused()
    expect(page.locator("#compose-send")).to_be_visible()
    expect(page.locator("#compose-status")).to_be_hidden()


def test_no_tag_is_cut(page: Page, visitors: Visitors) -> None:
    expect(row(page, visitors.demo, "teaser_sent").first.locator(".tag")).to_have_text("⚡ socket")
    tags: list[dict[str, Any]] = page.locator("#feed .row .tag").evaluate_all(
        f"""(tags) => tags.map((tag) => ({{ text: tag.innerText, scroll: tag.scrollWidth,
              client: tag.clientWidth, inside: ({INSIDE_CLIPS})(tag) }}))"""
    )
    texts = {tag["text"] for tag in tags}

    assert {"⚡ socket", "🤖 AI", "pending"} <= texts, texts
    assert all(tag["scroll"] <= tag["client"] and tag["inside"] for tag in tags), tags


def test_the_conversion_charts_are_drawn_at_their_size_with_no_zero_labels(page: Page) -> None:
    chart = page.locator("#conversion-chart svg")
    expect(chart).to_be_visible()
    expect(page.locator("#conversion-over-time svg")).to_be_visible()
    drawn: dict[str, Any] = page.evaluate("""() => {
        const svg = document.querySelector('#conversion-chart svg');
        const axis = [...document.querySelectorAll('#conversion-over-time svg text.axis')];
        return { scale: svg.getBoundingClientRect().width / svg.viewBox.baseVal.width,
                 labels: [...svg.querySelectorAll('text')].map((text) => text.textContent),
                 times: axis.map((text) => text.textContent).filter((text) => /:/.test(text)),
                 points: [...document.querySelectorAll('#conversion-over-time svg circle title')]
                   .map((title) => title.textContent) };
    }""")

    assert abs(drawn["scale"] - 1) < 0.02, drawn  # 12-px text stays 12 px
    assert not [label for label in drawn["labels"] if re.match(r"^0( |$)", label)], drawn
    assert len(drawn["times"]) >= 2, drawn  # an hourly time axis
    # A point names its day too: a 24-hour chart holds each hour twice.
    days = {point.split(": ")[0].rsplit(", ", 1)[0] for point in drawn["points"]}
    assert len(days) >= 2 and all(re.search(r"\d", day) for day in days), drawn["points"][:3]


def test_the_feed_is_worked_by_keyboard(page: Page) -> None:
    page.focus("#feed")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    focused = page.locator("#feed .row:focus")
    expect(focused).to_have_count(1)
    key = focused.get_attribute("data-key")
    page.keyboard.press("Enter")

    expect(page.locator("#side")).to_be_visible()
    expect(page.locator("#details h2")).not_to_be_empty()
    expect(page.locator("#feed .row.selected")).to_have_attribute("data-key", key or "")
    if width(page) < DRAWER_BELOW:  # the drawer takes the focus, and gives it back
        expect(page.locator("#details")).to_be_focused()
        page.get_by_role("button", name="Close the panel").click()
        expect(page.locator(f'#feed .row[data-key="{key}"]')).to_be_focused()
