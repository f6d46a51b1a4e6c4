"""The widget in a real headless Chromium against a real server process."""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

try:
    from playwright.sync_api import Locator, Page, Request, Route, WebSocketRoute, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)

from tests.support import run_teaser_cli

from .conftest import ARTIFACTS, SITE_ID, Console, LiveServer

PREFIX = "[AI PRL Assist]"
CAMPAIGN = (
    "utm_source=facebook&utm_medium=cpc&utm_campaign=chairs_sale"
    "&customer_id=12345&customer_email=test@woodstock.com"
)
SESSION_ID = re.compile(r"^sess_\d{13}_[a-z0-9]{9}$")
TEASER_WS = re.compile(r"/api/teaser-ws")
NO_WEBSOCKET = "delete window.WebSocket;"
# Playwright cannot intercept beacons, and the page is gone once one is sent: keep a copy.
RECORD_BEACONS = """
    const send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, body) => {
        const kept = JSON.parse(localStorage.getItem('beacons') || '[]');
        localStorage.setItem('beacons', JSON.stringify([...kept, { url, body }]));
        return send(url, body);
    };"""


def open_demo(page: Page, server: LiveServer, query: str = "") -> str:
    page.goto(f"{server.base_url}/demo?{query}")
    expect(page.locator("#session-id")).to_have_text(SESSION_ID)
    return page.locator("#session-id").inner_text()


def bubble(page: Page) -> Locator:
    return page.locator("teaser-widget .m")  # playwright's CSS engine pierces the open shadow root


def record_polls(page: Page) -> list[float]:
    """When each poll request left the page."""
    polls: list[float] = []

    def request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/teaser-messages"):
            polls.append(time.monotonic())

    page.on("request", request)
    return polls


def received(page: Page) -> list[str]:
    return page.locator("#messages .message").all_inner_texts()


def test_teaser_reaches_the_bubble_over_websocket_within_a_second(
    page: Page, console: Console, server: LiveServer
) -> None:
    events: list[dict[str, object]] = []

    def capture(route: Route) -> None:
        events.append(json.loads(route.request.post_data or "null"))
        route.fulfill(status=202, json={})

    page.route("**/api/events", capture)
    page.add_init_script(RECORD_BEACONS)
    session_id = open_demo(page, server, CAMPAIGN)
    expect(page.locator("#transport")).to_have_text("websocket")

    text = "🎉 Special offer just for you! 20% off chairs today!"
    server.send_teaser(session_id, text)
    expect(bubble(page)).to_have_text(text, timeout=1000)

    assert received(page) == [text]
    assert page.evaluate("TeaserWidget.transport") == "websocket"
    console.wait_for(page, f"{PREFIX} 🎯 NEW TEASER MESSAGE RECEIVED: {text}")
    console.wait_for(page, f"{PREFIX} ✅ Teaser shown with message: {text}")
    assert f"{PREFIX} 🔌 WebSocket connected" in console.lines
    curl = page.locator("#curl").inner_text()
    assert f'"sessionId": "{session_id}"' in curl and "X-API-Key: woodstock_rt_key_2024" in curl

    page.wait_for_timeout(300)  # let the scale-in animation finish
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "demo-teaser.png")

    page_view = next(e for e in events if e["type"] == "page_view")
    assert page_view["sessionId"] == session_id and page_view["siteId"] == SITE_ID
    assert page_view["path"] == "/demo"
    assert page_view["utm"] == {
        "utm_source": "facebook",
        "utm_medium": "cpc",
        "utm_campaign": "chairs_sale",
    }
    assert page_view["customerId"] == "12345"
    assert page_view["customerEmail"] == "test@woodstock.com"
    assert page_view["timeZone"]
    assert any(e["type"] == "teaser_shown" for e in events)

    page.goto(f"{server.base_url}/healthz")  # pagehide: the visit's end goes out as a beacon
    beacons = page.evaluate("JSON.parse(localStorage.getItem('beacons') || '[]')")
    assert [b["url"] for b in beacons] == [f"{server.base_url}/api/events"]
    leave = json.loads(beacons[0]["body"])
    assert leave["type"] == "page_leave" and leave["sessionId"] == session_id
    assert leave["utm"]["utm_campaign"] == "chairs_sale"


def test_polls_when_the_browser_has_no_websocket(
    page: Page, console: Console, server: LiveServer
) -> None:
    page.add_init_script(NO_WEBSOCKET)
    session_id = open_demo(page, server, "pollInterval=500")
    expect(page.locator("#transport")).to_have_text("polling")
    console.wait_for(page, f"{PREFIX} 📭 No new teaser messages")

    server.send_teaser(session_id, "Polled in")
    expect(bubble(page)).to_have_text("Polled in", timeout=1000)  # one interval, plus slack

    assert f"{PREFIX} ↩️ Falling back to polling" in console.lines
    assert f"{PREFIX} 🔄 Polling for teaser messages..." in console.lines
    console.wait_for(page, f"{PREFIX} 🎯 NEW TEASER MESSAGE RECEIVED: Polled in")
    expect(page.locator("#last-poll")).not_to_contain_text("none")


def test_polls_while_the_server_refuses_the_socket_and_stops_once_it_opens(
    page: Page, console: Console, server: LiveServer
) -> None:
    attempts: list[float] = []
    refuse = True

    def socket(ws: WebSocketRoute) -> None:
        attempts.append(time.monotonic())
        if refuse:
            ws.close(code=1011, reason="unavailable")
        else:
            ws.connect_to_server()

    page.route_web_socket(TEASER_WS, socket)
    polls = record_polls(page)
    session_id = open_demo(page, server, "pollInterval=500")
    expect(page.locator("#transport")).to_have_text("polling")

    server.send_teaser(session_id, "Despite the refusal")
    expect(bubble(page)).to_have_text("Despite the refusal", timeout=1000)

    # It keeps trying the socket (first retry after 1-2 s with jitter) ...
    page.wait_for_timeout(2200)
    assert len(attempts) >= 2
    # ... and once the socket opens, polling stops.
    refuse = False
    expect(page.locator("#transport")).to_have_text("websocket", timeout=8000)
    page.wait_for_timeout(200)  # a poll already on its way may still land
    polls_then = len(polls)
    page.wait_for_timeout(1500)
    assert len(polls) == polls_then
    server.send_teaser(session_id, "Now by socket")
    expect(bubble(page)).to_have_text("Now by socket", timeout=1000)
    assert received(page) == ["Despite the refusal", "Now by socket"]


def test_answers_pings_acks_every_teaser_and_never_shows_one_twice(
    page: Page, console: Console, server: LiveServer
) -> None:
    frames: list[dict[str, object]] = []
    teaser = {
        "type": "teaser",
        "id": "tsr_1",
        "message": "Once only",
        "priority": "manual",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "expiresAt": "2099-01-01T00:00:00.000Z",
    }

    def fake_server(ws: WebSocketRoute) -> None:
        ws.on_message(lambda message: frames.append(json.loads(message)))
        ws.send(json.dumps({"type": "ping"}))
        ws.send(json.dumps(teaser))
        ws.send(json.dumps(teaser))

    page.route_web_socket(TEASER_WS, fake_server)
    session_id = open_demo(page, server)
    expect(bubble(page)).to_have_text("Once only")
    page.wait_for_timeout(300)
    assert frames.count({"type": "pong"}) == 1
    assert frames.count({"type": "ack", "id": "tsr_1"}) == 2
    assert received(page) == ["Once only"]

    # A reload keeps the session and remembers what was shown; the resent teaser is acked only.
    page.reload()
    expect(page.locator("#session-id")).to_have_text(session_id)
    expect(page.locator("#transport")).to_have_text("websocket")
    page.wait_for_timeout(500)
    assert frames.count({"type": "ack", "id": "tsr_1"}) == 4
    assert received(page) == []
    expect(page.locator("teaser-widget")).to_have_count(0)


def test_server_restart_falls_back_then_reconnects_without_losing_or_repeating(
    page: Page, console: Console, server_factory: Callable[..., LiveServer]
) -> None:
    server = server_factory()
    session_id = open_demo(page, server, "pollInterval=500")
    expect(page.locator("#transport")).to_have_text("websocket")
    server.send_teaser(session_id, "Before restart")
    expect(bubble(page)).to_have_text("Before restart", timeout=1000)

    server.stop()
    expect(page.locator("#transport")).to_have_text("polling", timeout=3000)
    server.start()
    server.send_teaser(session_id, "During restart")
    expect(bubble(page)).to_have_text("During restart", timeout=3000)
    expect(page.locator("#transport")).to_have_text("websocket", timeout=10_000)
    server.send_teaser(session_id, "After reconnect")
    expect(bubble(page)).to_have_text("After reconnect", timeout=1000)

    page.wait_for_timeout(1000)  # room for a duplicate to show up, if there were one
    assert received(page) == ["Before restart", "During restart", "After reconnect"]


def test_message_markup_is_shown_as_text_and_never_runs(
    page: Page, console: Console, server: LiveServer
) -> None:
    session_id = open_demo(page, server)
    expect(page.locator("#transport")).to_have_text("websocket")
    payload = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    server.send_teaser(session_id, payload)

    expect(bubble(page)).to_have_text(payload, timeout=1000)
    page.wait_for_timeout(500)
    assert console.dialogs == []
    assert (
        page.evaluate(
            "document.querySelector('teaser-widget').shadowRoot"
            ".querySelectorAll('img, script').length"
        )
        == 0
    )
    assert page.locator("#messages img").count() == 0
    assert received(page) == [payload]


HOSTILE_PAGE = """<!doctype html><html><head>
<style>
  * { display: none !important; font-size: 80px !important; position: static !important;
      width: 10px !important; line-height: 5 !important; color: red !important; }
  /* A rule on * alone would hide <html> too, and nothing at all could render. */
  html, body { display: block !important; }
</style>
<script src="/widget.js" data-site-id="woodstock_outlet" async></script>
</head><body><p>Shop</p></body></html>"""


@pytest.mark.parametrize("width, height", [(1280, 800), (320, 568)], ids=["desktop", "phone"])
def test_bubble_survives_hostile_page_css_and_fits_the_screen(
    page: Page, console: Console, server: LiveServer, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.route(
        f"{server.base_url}/hostile",
        lambda route: route.fulfill(status=200, content_type="text/html", body=HOSTILE_PAGE),
    )
    page.goto(f"{server.base_url}/hostile")
    page.wait_for_function("window.TeaserWidget")
    long_text = "Hi! " + "Our oak chairs are twenty percent off today only. " * 3
    page.evaluate("text => TeaserWidget.show(text)", long_text)

    expect(bubble(page)).to_be_visible()
    page.wait_for_timeout(300)  # the scale-in animation changes the box until it ends
    box = page.locator("teaser-widget .b").bounding_box()
    assert box is not None
    assert 0 <= box["x"] and box["x"] + box["width"] <= width
    assert 0 <= box["y"] and box["y"] + box["height"] <= height
    assert 150 <= box["width"] <= 320
    assert bubble(page).evaluate("e => getComputedStyle(e).fontSize") == "15px"
    # The bubble is on top: what is under its middle is the widget, not the page.
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).tagName",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert hit == "TEASER-WIDGET"
    assert console.errors == []


def test_close_button_hides_and_click_reports_the_teaser(
    page: Page, console: Console, server: LiveServer
) -> None:
    open_demo(page, server)
    page.evaluate("""() => { window.clicks = [];
        window.addEventListener('teaser:click', e => clicks.push(e.detail)); }""")
    page.evaluate("TeaserWidget.show('Click me')")
    bubble(page).click()
    assert page.evaluate("clicks") == [{"id": None, "message": "Click me"}]

    close = page.get_by_role("button", name="Close message")
    expect(close).to_be_visible()
    close.click()
    expect(page.locator("teaser-widget")).to_have_count(0)


def test_missing_events_endpoint_warns_once_and_breaks_nothing(
    page: Page, console: Console, server: LiveServer
) -> None:
    page.route(
        "**/api/events",
        lambda route: route.fulfill(
            status=404, json={"error": {"code": "not_found", "message": "Not Found"}}
        ),
    )
    open_demo(page, server)
    page.evaluate("TeaserWidget.show('one'); TeaserWidget.show('two')")
    page.wait_for_timeout(500)
    failures = [w for w in console.warnings if "Event reporting failed" in w]
    assert failures == [f"{PREFIX} Event reporting failed: HTTP 404"]
    assert console.errors == []
    expect(bubble(page)).to_have_text("two")


def test_polling_slows_while_hidden_and_resumes_at_once_when_visible(
    page: Page, console: Console, server: LiveServer
) -> None:
    page.add_init_script(
        NO_WEBSOCKET
        + """
        window.__hidden = false;
        Object.defineProperty(document, 'visibilityState',
            { get: () => window.__hidden ? 'hidden' : 'visible' });"""
    )
    polls = record_polls(page)
    open_demo(page, server, "pollInterval=300")
    page.wait_for_timeout(700)

    page.evaluate("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(400)  # the poll scheduled before hiding may still run
    hidden_since = len(polls)
    page.wait_for_timeout(1500)
    assert len(polls) - hidden_since <= 2  # 1.2 s apart now, instead of 0.3 s

    before = len(polls)
    shown_at = time.monotonic()
    page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(200)
    assert len(polls) > before and polls[before] - shown_at < 0.2


def test_destroy_stops_everything_and_removes_the_bubble(
    page: Page, console: Console, server: LiveServer
) -> None:
    session_id = open_demo(page, server)
    expect(page.locator("#transport")).to_have_text("websocket")
    page.evaluate("TeaserWidget.show('Bye')")
    page.evaluate("TeaserWidget.destroy()")

    expect(page.locator("teaser-widget")).to_have_count(0)
    assert page.evaluate("TeaserWidget.transport") == "closed"
    server.send_teaser(session_id, "Too late")
    page.wait_for_timeout(1000)
    assert received(page) == []
    expect(page.locator("teaser-widget")).to_have_count(0)


def test_widget_script_is_served_as_cacheable_javascript(server: LiveServer) -> None:
    response = httpx.get(f"{server.base_url}/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["etag"]
    assert "window.TeaserWidget" in response.text
    demo = httpx.get(f"{server.base_url}/demo")
    assert demo.status_code == 200 and demo.headers["content-type"].startswith("text/html")


def test_with_session_tokens_required_the_widget_still_gets_every_teaser_once(
    page: Page, console: Console, server_factory: Callable[..., LiveServer]
) -> None:
    server = server_factory(TEASER_REQUIRE_SESSION_TOKEN="true")
    session_id = open_demo(page, server, "pollInterval=500")
    expect(page.locator("#transport")).to_have_text("websocket")
    server.send_teaser(session_id, "Over the socket, with a token")
    expect(bubble(page)).to_have_text("Over the socket, with a token", timeout=1000)

    page.reload()  # same tab: same session, same token, and nothing shown twice
    assert open_demo_again(page) == session_id
    page.evaluate("TeaserWidget.destroy()")
    server.send_teaser(session_id, "Waiting for the next page")
    page.reload()
    expect(bubble(page)).to_have_text("Waiting for the next page", timeout=2000)
    assert received(page) == ["Waiting for the next page"]
    assert not console.errors


def open_demo_again(page: Page) -> str:
    expect(page.locator("#session-id")).to_have_text(SESSION_ID)
    return page.locator("#session-id").inner_text()


# A page the server refuses for good, and one it fails for a while.

SHOP_PAGE = """<!doctype html><title>Shop</title>
<script src="{server}/widget.js" data-site-id="{site}" data-poll-interval="500" async></script>"""


class ShopHandler(http.server.BaseHTTPRequestHandler):
    """A shop's own web server: every path is a page embedding the widget (?server=&site=)."""

    def do_GET(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        body = SHOP_PAGE.format(server=query["server"], site=query["site"]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def shop_origin() -> Iterator[str]:
    """Another origin on loopback, as a shop's site is to the Teaser server."""
    shop = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShopHandler)
    thread = threading.Thread(target=shop.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{shop.server_address[1]}"
    shop.shutdown()
    shop.server_close()


def open_shop(page: Page, server: LiveServer, page_origin: str, site: str) -> None:
    """A shop's page on `page_origin` embedding the widget of `server`."""
    query = urllib.parse.urlencode({"server": server.base_url, "site": site})
    page.goto(f"{page_origin}/shop?{query}")


def wait_for_transport(page: Page, state: str, timeout: float = 5.0) -> None:
    """Asked from here, not by a timer in the page: some tests stop the page's clock."""
    deadline = time.monotonic() + timeout
    while page.evaluate("window.TeaserWidget && TeaserWidget.transport") != state:
        assert time.monotonic() < deadline, f"the widget never became {state}"
        page.wait_for_timeout(50)


def record_calls(page: Page, server: LiveServer) -> list[str]:
    """Every request the page makes to the server, sockets included (not the script)."""
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/api/" in r.url else None)
    page.on("websocket", lambda ws: calls.append(ws.url))
    return calls


REFUSALS = {
    # data-site-id, and what the warning tells to run
    "origin not allowed": (SITE_ID, f"teaser site origins {SITE_ID} --add"),
    "unknown site": ("no_such_site", "teaser site add no_such_site"),
}


@pytest.mark.parametrize("returning", [False, True], ids=["first visit", "session kept"])
@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_page_the_server_refuses_for_good_stops_asking_and_says_why_once(
    page: Page,
    console: Console,
    server: LiveServer,
    shop_origin: str,
    refusal: str,
    returning: bool,
) -> None:
    site, advice = REFUSALS[refusal]
    origin = shop_origin
    if returning:  # a tab that already holds a session id: it opens the socket at once
        page.add_init_script(
            f"sessionStorage.setItem('teaser:session:{site}', "
            f"JSON.stringify({{id: 'sess_1700000000000_abcdefghi', token: null, seq: 0}}))"
        )
    calls = record_calls(page, server)
    open_shop(page, server, origin, site)
    wait_for_transport(page, "refused")

    page.wait_for_timeout(5000)  # ten poll intervals at the page's pace

    assert len(calls) <= 3, calls  # the session or the page view, a poll, the socket
    assert sum("/api/teaser-messages" in url for url in calls) == 1, calls
    assert len(console.warnings) == 1, console.warnings
    assert "Teaser refuses this page" in console.warnings[0] and advice in console.warnings[0]
    if refusal == "origin not allowed":
        assert f"origin '{origin}' is not allowed" in console.warnings[0]
        assert f"{advice} {origin}" in console.warnings[0]
    assert page.evaluate("TeaserWidget.transport") == "refused"
    assert console.errors == []


def test_a_refused_page_asks_again_rarely_and_recovers_once_its_origin_is_allowed(
    page: Page, console: Console, server_factory: Callable[..., LiveServer], shop_origin: str
) -> None:
    server = server_factory()
    page.clock.install()
    origin = shop_origin
    calls = record_calls(page, server)
    open_shop(page, server, origin, SITE_ID)
    wait_for_transport(page, "refused")
    polls = lambda: sum("/api/teaser-messages" in url for url in calls)  # noqa: E731
    page.clock.run_for(59_000)
    page.wait_for_timeout(300)
    assert polls() == 1  # nothing before a minute

    database = Path(server.env["DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))
    allowed = run_teaser_cli(database, "site", "origins", SITE_ID, "--add", origin)  # as advised
    assert allowed.returncode == 0, allowed.stderr
    page.wait_for_timeout(5500)  # the server's cache of the site lasts 5 s
    page.clock.run_for(30 * 60_000)  # the longest wait, at any step before it
    wait_for_transport(page, "websocket")

    assert 2 <= polls() <= 6  # 1 min, 2, 4, 8, 16 at most in half an hour, then accepted
    assert [w for w in console.warnings if "refuses" in w] == [console.warnings[0]]


def test_a_server_failing_for_a_while_is_polled_with_backoff_not_given_up_on(
    page: Page, console: Console, server: LiveServer
) -> None:
    page.add_init_script(NO_WEBSOCKET)
    polls = record_polls(page)
    page.route(
        "**/api/teaser-messages",
        lambda route: route.fulfill(
            status=503, json={"error": {"code": "store_unavailable", "message": "try later"}}
        ),
    )
    open_demo(page, server, "pollInterval=200")
    page.wait_for_timeout(4000)

    assert 2 <= len(polls) <= 5, polls  # 1-2 s, then 1-3 s, ...: not one every 200 ms
    assert page.evaluate("TeaserWidget.transport") == "polling"
    assert [w for w in console.warnings if "Polling failed" in w] == [
        f"{PREFIX} Polling failed: 503 store_unavailable: try later"
    ]


def test_a_poll_answered_with_retry_after_waits_that_long(
    page: Page, console: Console, server: LiveServer
) -> None:
    page.add_init_script(NO_WEBSOCKET)
    polls = record_polls(page)
    page.route(
        "**/api/teaser-messages",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "3"},
            json={"error": {"code": "rate_limited", "message": "slow down"}},
        ),
    )
    open_demo(page, server, "pollInterval=200")
    page.wait_for_timeout(5000)

    # At once, then 3 s later (and the next 3 s after that): not every 1-3 s of backoff.
    assert len(polls) == 2, polls
    assert polls[1] - polls[0] >= 2.9
