"""The dashboard's Webhooks dialog in a real Chromium against a real server and a real
receiver: an operator adds an endpoint and copies its secret, shown once; a test event
verifies with that secret (standardwebhooks) and its delivery shows 200 and a latency; a
replay sends the same webhook-id again; a rotation, a refusal, a disabled endpoint and a
removal read as they should; a /demo visitor's delivery and click reach the receiver; and
at a phone's width nothing runs off the side."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)

from tests.webhooks.receiver import Behaviour, Received, Receiver, first_of_each

from .conftest import (
    API_KEY,
    SCREENSHOTS,
    SITE_ID,
    LiveServer,
    new_operator,
    require_browser,
    sign_in,
)

KEY_HEADERS = {"X-API-Key": API_KEY, "X-Site-ID": SITE_ID}
PHONE = {"width": 390, "height": 844}
T = TypeVar("T")


class ThreadedReceiver:
    """tests/webhooks' receiver on an event loop of its own thread, since playwright's
    sync API owns this one."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=20)

    def start(self) -> None:
        self.thread.start()
        self.run(self.receiver.start())

    def stop(self) -> None:
        self.run(self.receiver.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def url(self, path: str) -> str:
        return self.receiver.url(path)

    def wait_for(
        self, path: str, kind: str, count: int = 1, timeout: float = 10.0
    ) -> list[Received]:
        """The first `count` arrivals of events of type `kind` at `path`, repeats included."""
        deadline = time.monotonic() + timeout
        while True:
            found = [each for each in self.receiver.at(path) if each.event["type"] == kind]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [each.event["type"] for each in first_of_each(self.receiver.at(path))]
                raise AssertionError(
                    f"{path}: {len(found)} {kind} of {count} in {timeout} s; {seen}"
                )
            time.sleep(0.02)


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    live = ThreadedReceiver()
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()
    live = LiveServer(
        tmp_path_factory.mktemp("server"),
        TEASER_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
        TEASER_WEBHOOK_INTERVAL="0.05",
        TEASER_WEBHOOK_TIMEOUT="2",
        TEASER_WEBHOOK_RETRY_BASE="0.2",
        TEASER_WEBHOOK_RETRY_CAP="1",
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def signed_in(browser: Browser, server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(10_000)
    sign_in(context.new_page(), server, new_operator(server))
    yield context
    context.close()


@pytest.fixture
def page(signed_in: BrowserContext, server: LiveServer) -> Iterator[Page]:
    page = signed_in.new_page()
    page.goto(f"{server.base_url}/dashboard")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.click("#webhooks-open")
    expect(page.locator("#webhooks")).to_be_visible()
    yield page
    page.close()


def add_endpoint(page: Page, url: str, events: tuple[str, ...] = ()) -> tuple[int, str]:
    """Adds an endpoint through the dialog and copies its secret: (number, secret)."""
    page.fill("#webhook-url", url)
    for box in page.locator('#webhook-events input[type="checkbox"]').all():
        box.set_checked(not events or box.get_attribute("value") in events)
    page.click("#webhook-add-submit")
    expect(page.locator("#webhook-secret")).to_contain_text("you won't see this secret again")
    page.click("#webhook-secret-copy")
    expect(page.locator("#webhook-secret")).to_contain_text("Copied")
    secret = str(page.evaluate("navigator.clipboard.readText()"))
    number = int(page.locator("#webhook-secret h3").inner_text().split("#")[1].split(":")[0])
    return number, secret


def endpoint(page: Page, number: int) -> Any:
    return page.locator(f'#webhook-list .endpoint[data-number="{number}"]')


@pytest.fixture(scope="module")
def hooks(
    signed_in: BrowserContext, server: LiveServer, receiver: ThreadedReceiver
) -> tuple[int, str]:
    """An endpoint taking every event at the receiver's /hooks: (number, secret)."""
    page = signed_in.new_page()
    page.goto(f"{server.base_url}/dashboard")
    page.click("#webhooks-open")
    number, secret = add_endpoint(page, receiver.url("hooks"))
    page.close()
    return number, secret


def open_deliveries(page: Page, number: int) -> None:
    toggle = endpoint(page, number).get_by_role("button", name="Deliveries")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()


def test_an_added_endpoints_secret_shows_once_and_verifies_its_test_event(
    page: Page, receiver: ThreadedReceiver, hooks: tuple[int, str]
) -> None:
    number, secret = hooks
    expect(page.locator("#webhook-secret")).to_be_hidden()  # not again on a later opening
    card = endpoint(page, number)
    expect(card).to_contain_text(receiver.url("hooks"))
    expect(card).to_contain_text("every event")
    card.get_by_role("button", name="Send test event").click()

    [event] = receiver.wait_for("hooks", "teaser.test")
    assert secret.startswith("whsec_")
    assert event.verified(secret)["data"]["endpoint"] == number
    delivery = card.locator(".delivery", has=page.locator(f'code:text-is("{event.id}")'))
    expect(delivery.locator(".code")).to_have_text("HTTP 200")
    expect(delivery.locator(".latency")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(delivery).to_contain_text("1 attempt")
    expect(card.locator(".facts")).to_contain_text("last delivery")


def test_a_replay_sends_the_same_webhook_id_again(
    page: Page, receiver: ThreadedReceiver, hooks: tuple[int, str]
) -> None:
    number, secret = hooks
    card = endpoint(page, number)
    before = len(sent_tests(receiver))
    card.get_by_role("button", name="Send test event").click()
    first = receiver.wait_for("hooks", "teaser.test", count=before + 1)[-1]
    delivery = card.locator(".delivery", has=page.locator(f'code:text-is("{first.id}")'))
    expect(delivery.locator(".code")).to_have_text("HTTP 200")
    delivery.get_by_role("button", name="Replay").click()

    again = receiver.wait_for("hooks", "teaser.test", count=before + 2)[-1]
    assert again.id == first.id
    assert again.verified(secret) == first.verified(secret)
    # A replay starts its attempts afresh: the row is pending, then delivered once more.
    expect(delivery).to_have_attribute("data-status", "delivered")
    expect(delivery.locator(".code")).to_have_text("HTTP 200")


def sent_tests(receiver: ThreadedReceiver) -> list[Received]:
    return [each for each in receiver.receiver.at("hooks") if each.event["type"] == "teaser.test"]


def test_a_refused_url_is_said_beside_the_form_and_adds_nothing(page: Page) -> None:
    # What the site has, from the API: the list may still be loading when the dialog opens.
    known = "fetch('/api/webhooks').then((r) => r.json()).then((b) => b.endpoints.length)"
    before = int(page.evaluate(known))
    expect(page.locator("#webhook-list .endpoint")).to_have_count(before)
    page.fill("#webhook-url", "ftp://shop.example/hook")
    page.click("#webhook-add-submit")

    expect(page.locator("#webhook-add-error")).to_contain_text("url")
    expect(page.locator("#webhook-secret")).to_be_hidden()
    expect(page.locator("#webhook-list .endpoint")).to_have_count(before)
    assert int(page.evaluate(known)) == before


def test_a_rotation_shows_the_new_secret_once_and_both_sign_for_a_day(
    page: Page, receiver: ThreadedReceiver
) -> None:
    number, old = add_endpoint(page, receiver.url("rotated"), events=("teaser.clicked",))
    card = endpoint(page, number)
    expect(card).to_contain_text("teaser.clicked")
    card.get_by_role("button", name="Rotate secret").click()
    secret_box = page.locator("#webhook-secret")
    expect(secret_box).to_contain_text("keeps working beside it for 24 hours")
    page.click("#webhook-secret-copy")
    expect(secret_box).to_contain_text("Copied")
    new = str(page.evaluate("navigator.clipboard.readText()"))
    card.get_by_role("button", name="Send test event").click()

    [event] = receiver.wait_for("rotated", "teaser.test")
    assert new != old
    for secret in (old, new):
        assert event.verified(secret)["type"] == "teaser.test"
    secret_box.get_by_role("button", name="Done").click()
    expect(secret_box).to_be_hidden()


def test_a_disabled_endpoint_says_why_and_is_enabled_again(
    page: Page, receiver: ThreadedReceiver
) -> None:
    receiver.receiver.behaviours["gone"] = Behaviour(status=410)  # Gone: disable me
    number, _ = add_endpoint(page, receiver.url("gone"))
    card = endpoint(page, number)
    card.get_by_role("button", name="Send test event").click()
    receiver.wait_for("gone", "teaser.test")
    expect(card.locator(".endpoint-head .tag")).to_have_text("Disabled")
    expect(card.locator(".reason").first).to_contain_text("410")
    card.get_by_role("button", name="Enable").click()

    expect(card.locator(".endpoint-head .tag")).to_have_text("Enabled")
    expect(card.get_by_role("button", name="Enable")).to_have_count(0)


def test_removing_asks_first_and_then_the_endpoint_is_gone(
    page: Page, receiver: ThreadedReceiver, server: LiveServer
) -> None:
    number, _ = add_endpoint(page, receiver.url("removed"))
    card = endpoint(page, number)
    card.get_by_role("button", name="Remove").click()
    card.get_by_role("button", name="Keep it").click()
    expect(card.get_by_role("button", name="Remove")).to_be_focused()
    card.get_by_role("button", name="Remove").click()
    expect(card.get_by_role("button", name="Yes, remove it")).to_be_focused()
    page.keyboard.press("Enter")

    expect(endpoint(page, number)).to_have_count(0)
    listed = httpx.get(f"{server.base_url}/api/webhooks", headers=KEY_HEADERS, timeout=5).json()
    assert number not in [each["number"] for each in listed["endpoints"]]


def test_a_demo_visitors_delivery_and_click_reach_the_receiver(
    browser: Browser, server: LiveServer, receiver: ThreadedReceiver, hooks: tuple[int, str]
) -> None:
    _, secret = hooks
    visitor = browser.new_context(viewport={"width": 1000, "height": 700})
    demo = visitor.new_page()
    demo.goto(f"{server.base_url}/demo")
    expect(demo.locator("#transport")).to_have_text("websocket")
    session = demo.locator("#session-id").inner_text()
    teaser = server.send_teaser(session, "Told to the shop's backend")
    bubble = demo.locator("teaser-widget .m")
    expect(bubble).to_have_text("Told to the shop's backend", timeout=1000)

    # The widget acks as it shows the teaser: teaser.delivered follows within a second.
    delivered = wait_for_teaser(receiver, "teaser.delivered", teaser, timeout=1.0)
    bubble.click()
    clicked = wait_for_teaser(receiver, "teaser.clicked", teaser)
    visitor.close()

    assert delivered.verified(secret)["data"]["via"] == "websocket"
    assert delivered.event["data"]["sessionId"] == session
    assert clicked.verified(secret)["data"]["sessionId"] == session


def wait_for_teaser(
    receiver: ThreadedReceiver, kind: str, teaser: str, timeout: float = 10.0
) -> Received:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for each in receiver.receiver.at("hooks"):
            if each.event["type"] == kind and each.event["data"].get("teaserId") == teaser:
                return each
        time.sleep(0.02)
    raise AssertionError(f"no {kind} for {teaser} within {timeout} s")


def test_at_a_phones_width_nothing_runs_off_the_side_and_every_button_is_in_reach(
    page: Page, hooks: tuple[int, str]
) -> None:
    page.set_viewport_size(PHONE)
    number, _ = hooks
    open_deliveries(page, number)
    expect(endpoint(page, number).locator(".delivery").first).to_be_visible()
    page.wait_for_timeout(300)  # the follow-up looks settle before the picture
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-390-webhooks.png")

    measured = page.evaluate(
        """() => ({ scroll: document.documentElement.scrollWidth, inner: innerWidth,
            dialog: document.getElementById('webhooks').scrollWidth,
            dialogWidth: document.getElementById('webhooks').clientWidth })"""
    )
    assert measured["scroll"] <= measured["inner"], measured
    assert measured["dialog"] <= measured["dialogWidth"], measured
    buttons = page.locator("#webhooks button:visible").all()
    assert len(buttons) >= 6
    for button in buttons:
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], button.inner_text()


def test_the_dialog_is_worked_by_keyboard_and_escape_gives_the_focus_back(page: Page) -> None:
    expect(page.locator("#webhook-url")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator('#webhook-events input[value="teaser.delivered"]')).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator('#webhook-events input[value="teaser.delivered"]')).not_to_be_checked()
    page.keyboard.press("Escape")

    expect(page.locator("#webhooks")).to_be_hidden()
    expect(page.locator("#webhooks-open")).to_be_focused()
