"""The widget's long-polling, for visitors whose network lets no WebSocket through, in a real
headless Chromium against a real server process."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

try:
    from playwright.sync_api import Page, Request, Response, Route, WebSocketRoute, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)

from .conftest import SITE_ID, Console, LiveServer
from .test_widget import NO_WEBSOCKET, TEASER_WS, bubble, open_demo, received

LONG_WAIT = 25000  # what the widget asks for (widget.js)
POLL_MARGIN = 10000  # how long past it the widget gives up on a held poll
PROBE_WAIT = 1  # what it asks for after a switch or a failure: an answer at once
# A tab whose visibility the test sets: window.__hidden, then a visibilitychange event.
VISIBILITY = """
    window.__hidden = false;
    Object.defineProperty(document, 'visibilityState',
        { get: () => window.__hidden ? 'hidden' : 'visible' });"""
HIDE = "window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))"
SHOW = "window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))"


class Poll:
    """One poll request the page sent: when, what it asked, and how it ended."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.sent_at = time.monotonic()
        self.asked: dict[str, Any] = json.loads(request.post_data or "{}")
        self.response: Response | None = None
        self.failure: str | None = None

    @property
    def wait(self) -> int | None:
        return self.asked.get("wait")

    @property
    def held(self) -> bool:
        return self.wait == LONG_WAIT

    @property
    def open(self) -> bool:
        return self.response is None and self.failure is None

    def answer(self) -> dict[str, Any]:
        assert self.response is not None, "the poll has no answer"
        body: dict[str, Any] = self.response.json()
        return body


class Polls:
    """Every poll the page sends, in order."""

    def __init__(self, page: Page) -> None:
        self.all: list[Poll] = []
        page.on("request", self._sent)
        page.on("response", self._answered)
        page.on("requestfailed", self._failed)

    @staticmethod
    def _is_poll(request: Request) -> bool:
        return request.method == "POST" and request.url.endswith("/api/teaser-messages")

    def _of(self, request: Request) -> Poll | None:
        return next((poll for poll in self.all if poll.request is request), None)

    def of(self, request: Request) -> Poll:
        poll = self._of(request)
        assert poll is not None, f"no poll sent for {request}"
        return poll

    def _sent(self, request: Request) -> None:
        if self._is_poll(request):
            self.all.append(Poll(request))

    def _answered(self, response: Response) -> None:
        poll = self._of(response.request)
        if poll is not None:
            poll.response = response

    def _failed(self, request: Request) -> None:
        poll = self._of(request)
        if poll is not None:
            poll.failure = request.failure or "failed"

    def held_open(self) -> Poll | None:
        return next((poll for poll in self.all if poll.held and poll.open), None)

    def since(self, index: int) -> list[Poll]:
        return self.all[index:]


def wait_until(page: Page, done: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        page.wait_for_timeout(25)  # lets playwright dispatch the page's events


def wait_for_held_poll(page: Page, polls: Polls) -> Poll:
    wait_until(page, polls.held_open, "a held poll on its way")
    held = polls.held_open()
    assert held is not None
    return held


def open_without_websocket(page: Page, server: LiveServer, query: str = "") -> tuple[str, Polls]:
    page.add_init_script(NO_WEBSOCKET)
    polls = Polls(page)
    session_id = open_demo(page, server, query)
    expect(page.locator("#transport")).to_have_text("polling")
    return session_id, polls


def test_without_websocket_a_teaser_reaches_the_bubble_within_a_second(
    page: Page, console: Console, server: LiveServer
) -> None:
    session_id, polls = open_without_websocket(page, server)  # the server's 8 s interval
    wait_for_held_poll(page, polls)

    started = time.monotonic()
    server.send_teaser(session_id, "Held for you")
    left = 1.0 - (time.monotonic() - started)
    expect(bubble(page)).to_have_text("Held for you", timeout=max(left, 0.001) * 1000)
    assert time.monotonic() - started < 1.0  # the product's promise; an 8 s poll would miss it

    assert received(page) == ["Held for you"]
    assert console.errors == []


def test_each_poll_asks_to_be_held_and_the_server_grants_it(
    page: Page, console: Console, server: LiveServer
) -> None:
    session_id, polls = open_without_websocket(page, server)
    held = wait_for_held_poll(page, polls)
    server.send_teaser(session_id, "Asked and granted")
    expect(bubble(page)).to_have_text("Asked and granted", timeout=1000)
    wait_until(page, lambda: held.response is not None, "the held poll answered")
    wait_for_held_poll(page, polls)  # and the next one goes at once

    # The first poll after the switch asks for the shortest wait: it is answered at once.
    first, *rest = polls.all
    assert first.wait == PROBE_WAIT and first.answer()["wait"] == PROBE_WAIT
    assert first.answer()["messages"] == []
    assert [poll.wait for poll in rest] == [LONG_WAIT] * len(rest) and len(rest) >= 2
    assert held.answer()["wait"] == LONG_WAIT
    assert [m["message"] for m in held.answer()["messages"]] == ["Asked and granted"]
    assert all(poll.asked["sessionId"] == session_id for poll in polls.all)


def test_two_teasers_in_a_row_both_show_once_each(
    page: Page, console: Console, server: LiveServer
) -> None:
    session_id, polls = open_without_websocket(page, server)
    wait_for_held_poll(page, polls)

    server.send_teaser(session_id, "First of two")
    server.send_teaser(session_id, "Second of two")
    # Both well inside the 8 s a plain poll would take: the loop polls again at once.
    expect(page.locator("#messages .message")).to_have_count(2, timeout=2000)
    expect(bubble(page)).to_have_text("Second of two")
    wait_for_held_poll(page, polls)
    page.wait_for_timeout(500)  # room for a duplicate to show up, if there were one

    assert received(page) == ["First of two", "Second of two"]
    delivered = [
        m["message"] for poll in polls.all if poll.response for m in poll.answer()["messages"]
    ]
    assert delivered == ["First of two", "Second of two"]


def test_a_server_that_does_not_long_poll_is_polled_at_its_interval(
    page: Page, console: Console, server_factory: Callable[..., LiveServer]
) -> None:
    # Long-polling off: the server answers at once, without `wait`; its interval is 600 ms.
    server = server_factory(TEASER_LONG_POLL_SECONDS="0", TEASER_POLL_INTERVAL_MS="600")
    session_id, polls = open_without_websocket(page, server)
    page.wait_for_timeout(2500)

    sent = [poll.sent_at for poll in polls.all]
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert 3 <= len(sent) <= 6, gaps  # at once, then every 600 ms: not one after another
    assert min(gaps) >= 0.55, gaps
    answered = [poll.answer() for poll in polls.all if poll.response]
    assert answered and all("wait" not in answer for answer in answered), answered
    assert all(poll.wait for poll in polls.all)  # it asks on: a server may grant it later

    server.send_teaser(session_id, "At the interval")
    expect(bubble(page)).to_have_text("At the interval", timeout=2000)


CUTS: dict[str, Callable[[Route], None] | None] = {
    "a proxy's 504": lambda route: route.fulfill(status=504, body="Gateway Timeout"),
    "a connection reset": lambda route: route.abort("connectionreset"),
    "no answer at all": None,  # the widget gives up on it itself, 10 s past its wait
}


def cut_held_poll(
    page: Page, polls: Polls, held: list[Route], how: str, count: int
) -> tuple[Poll, float]:
    """Wait for the `count`th held poll, cut it `how` a while later; when it was cut."""
    wait_until(page, lambda: len(held) >= count, f"held poll {count}", timeout=8)
    poll = polls.of(held[-1].request)
    page.wait_for_timeout(1000)  # held a while, as a proxy would before it cuts
    action = CUTS[how]
    if action is None:  # to just past the widget's deadline: the backoff it then sets is ahead
        held_for = time.monotonic() - poll.sent_at
        page.clock.run_for(round(LONG_WAIT + POLL_MARGIN + 100 - held_for * 1000))
    else:
        action(held[-1])
    cut_at = time.monotonic()
    wait_until(page, lambda: polls.all[-1] is not poll, f"a poll after cut {count}", timeout=8)
    return poll, cut_at


@pytest.mark.parametrize("cut", CUTS)
def test_long_polls_cut_on_the_way_fall_back_to_plain_polls_for_the_page(
    page: Page, console: Console, server: LiveServer, cut: str
) -> None:
    """Two held polls cut in a row, with a short poll answered between them: long requests
    do not get through, so the widget polls plainly from then on, never in a tight loop."""
    held: list[Route] = []

    def on_the_way(route: Route) -> None:
        if json.loads(route.request.post_data or "{}").get("wait") == LONG_WAIT:
            held.append(route)  # cut below, once it has been held a while
        else:
            route.continue_()

    page.clock.install()  # time flows as usual; run_for() jumps past a wait
    page.route("**/api/teaser-messages", on_the_way)
    session_id, polls = open_without_websocket(page, server, "pollInterval=500")
    cuts = [cut_held_poll(page, polls, held, cut, count) for count in (1, 2)]
    page.wait_for_timeout(2000)

    assert [poll for poll in polls.all if poll.held] == [poll for poll, _ in cuts]
    after = polls.all[polls.all.index(cuts[-1][0]) + 1 :]
    assert len(after) >= 2 and all(poll.wait is None for poll in after), after
    # Not a tight loop: after each cut it waits its backoff (1 s at least), then its interval.
    for poll, cut_at in cuts:
        assert polls.all[polls.all.index(poll) + 1].sent_at - cut_at >= 0.5
    gaps = [b.sent_at - a.sent_at for a, b in itertools.pairwise(after)]
    assert min(gaps) >= 0.45, gaps
    failures = [w for w in console.warnings if "Polling failed" in w]
    assert len(failures) == 2, console.warnings  # once for each, with a recovery between them

    server.send_teaser(session_id, "By plain polls")
    expect(bubble(page)).to_have_text("By plain polls", timeout=2000)


def test_a_hidden_tab_gives_up_its_held_poll_and_long_polls_again_once_shown(
    page: Page, console: Console, server: LiveServer
) -> None:
    page.add_init_script(VISIBILITY)
    session_id, polls = open_without_websocket(page, server, "pollInterval=300")
    held = wait_for_held_poll(page, polls)

    page.evaluate(HIDE)
    wait_until(page, lambda: held.failure is not None, "the held poll cancelled")
    hidden_from = len(polls.all)
    page.wait_for_timeout(1500)  # 4 x 300 ms apart while hidden
    while_hidden = polls.since(hidden_from)
    assert 1 <= len(while_hidden) <= 2 and all(poll.wait is None for poll in while_hidden)

    shown_at = time.monotonic()
    page.evaluate(SHOW)
    again = wait_for_held_poll(page, polls)
    assert again.sent_at - shown_at < 0.5  # at once, not after the slowed-down timer
    server.send_teaser(session_id, "Welcome back")
    expect(bubble(page)).to_have_text("Welcome back", timeout=1000)
    assert held.failure == "net::ERR_ABORTED"


def test_once_the_socket_opens_the_held_poll_is_cancelled_and_polling_stops(
    page: Page, console: Console, server: LiveServer
) -> None:
    refuse = True

    def socket(ws: WebSocketRoute) -> None:
        if refuse:
            ws.close(code=1011, reason="unavailable")
        else:
            ws.connect_to_server()

    page.route_web_socket(TEASER_WS, socket)
    polls = Polls(page)
    session_id = open_demo(page, server)
    expect(page.locator("#transport")).to_have_text("polling")
    held = wait_for_held_poll(page, polls)

    refuse = False
    expect(page.locator("#transport")).to_have_text("websocket", timeout=8000)
    wait_until(page, lambda: held.failure is not None, "the held poll cancelled")
    assert held.failure == "net::ERR_ABORTED"
    polls_then = len(polls.all)
    page.wait_for_timeout(1000)
    assert len(polls.all) == polls_then and not any(poll.open for poll in polls.all)

    server.send_teaser(session_id, "Now by socket")
    expect(bubble(page)).to_have_text("Now by socket", timeout=1000)
    assert received(page) == ["Now by socket"]


def test_two_tabs_of_one_session_do_not_take_turns_ending_each_others_held_poll(
    page: Page, console: Console, server: LiveServer
) -> None:
    """A duplicated tab keeps its session; the server holds one poll per session, so each
    tab's poll ends the other's. The second early answer in a row waits an interval."""
    session_id, polls = open_without_websocket(page, server)  # the server's 8 s interval
    wait_for_held_poll(page, polls)
    stored = page.evaluate(f"sessionStorage.getItem('teaser:session:{SITE_ID}')")
    twin = page.context.new_page()
    twin.add_init_script(
        NO_WEBSOCKET + f"sessionStorage.setItem('teaser:session:{SITE_ID}', {json.dumps(stored)});"
    )
    twin_polls = Polls(twin)
    assert open_demo(twin, server) == session_id
    page.wait_for_timeout(4000)

    counts = [len(polls.all), len(twin_polls.all)]
    assert sum(counts) <= 10, counts  # not one after another, until a 429

    server.send_teaser(session_id, "For one of the two")
    shown = lambda: [received(page), received(twin)]  # noqa: E731
    wait_until(page, lambda: any(shown()), "the teaser shown", timeout=10)
    twin.wait_for_timeout(500)
    assert sorted(shown(), key=len) == [[], ["For one of the two"]]  # once, in one tab
    twin.close()


def test_a_teaser_the_cancelled_held_poll_took_reaches_the_tab_once_it_is_shown(
    page: Page, console: Console, server: LiveServer
) -> None:
    """The server may hold a cancelled poll until its wait is over, and hand it a teaser that
    then reaches no one; the first poll once shown asks from the last teaser seen (since)."""
    page.add_init_script(VISIBILITY)
    session_id, polls = open_without_websocket(page, server, "pollInterval=300")
    server.send_teaser(session_id, "Before hiding")  # the widget now has a position
    expect(bubble(page)).to_have_text("Before hiding", timeout=1000)
    held = wait_for_held_poll(page, polls)
    page.evaluate(HIDE)
    wait_until(page, lambda: held.failure is not None, "the held poll cancelled")
    hidden_from = len(polls.all)
    wait_until(page, lambda: polls.since(hidden_from)[-1:] and polls.all[-1].response, "answered")

    server.send_teaser(session_id, "While hidden")
    page.wait_for_timeout(1500)  # a hidden poll or two, 1.2 s apart
    shown_from = len(polls.all)
    page.evaluate(SHOW)
    expect(bubble(page)).to_have_text("While hidden", timeout=1000)

    first_shown = polls.all[shown_from]
    assert first_shown.wait == PROBE_WAIT and first_shown.asked["since"] >= 1
    page.wait_for_timeout(300)
    assert received(page) == ["Before hiding", "While hidden"]
