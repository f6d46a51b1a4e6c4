"""Real server processes and one headless Chromium per module for the widget's browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import DEMO_KEY, DEMO_SITE, ROOT, ServerProcess, event_time

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
API_KEY = DEMO_KEY
SITE_ID = DEMO_SITE
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Where the layout tests leave a picture of each viewport, for a person to look at.
SCREENSHOTS = Path(os.environ.get("TEASER_SCREENSHOTS") or ROOT / "test-screenshots")

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
except ImportError:  # checked by require_browser(), which says what to install
    sync_playwright = None  # type: ignore[assignment]


def require_browser() -> None:
    """Skip on a developer machine without Chromium; under CI a missing browser is a failure."""
    missing = []
    if sync_playwright is None:
        missing.append("the playwright package (pip install playwright)")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not missing:
        return
    reason = "browser tests need " + " and ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class LiveServer(ServerProcess):
    """The real app in its own process on SQLite; restartable on the same port and DB."""

    def __init__(self, workdir: Path, **env: str) -> None:
        super().__init__(
            {"DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'teaser.db'}", **env}, workdir
        )
        self.env.pop("REDIS_URL", None)

    def send_teaser(self, session_id: str, message: str, site_id: str = SITE_ID) -> str:
        response = httpx.put(
            f"{self.base_url}/api/teaser-messages",
            headers={"X-API-Key": API_KEY, "X-Site-ID": site_id},
            json={
                "sessionId": session_id,
                "message": message,
                "priority": "manual",
                "expiresIn": 300000,
            },
            timeout=5,
        )
        assert response.status_code == 201, response.text
        return str(response.json().get("id", ""))


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        server = LiveServer(tmp_path_factory.mktemp("server"), **env)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()  # no point starting a server for tests that will skip
    live = LiveServer(tmp_path_factory.mktemp("server"))
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """What the page printed to its console, and the dialogs and errors it raised."""

    def __init__(self, page: Page) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._dialog)

    def _message(self, message: ConsoleMessage) -> None:
        self.lines.append(message.text)
        if message.type == "warning":
            self.warnings.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def wait_for(self, page: Page, line: str, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            if time.monotonic() > deadline:
                raise AssertionError(f"console never showed {line!r}; it showed {self.lines!r}")
            page.wait_for_timeout(50)  # lets playwright dispatch the console events


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def console(page: Page) -> Console:
    return Console(page)


def teaser_cli(server: LiveServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def new_operator(server: LiveServer, site: str = SITE_ID) -> tuple[str, str]:
    email = f"op-{uuid.uuid4().hex[:8]}@{site.replace('_', '-')}.example"
    printed = teaser_cli(server, "operator", "add", site, email)
    return email, printed.strip().rsplit(": ", 1)[1]


def sign_in(page: Page, server: LiveServer, account: tuple[str, str], site: str = SITE_ID) -> None:
    email, password = account
    page.goto(f"{server.base_url}/dashboard")
    expect(page).to_have_url(f"{server.base_url}/dashboard/login")
    page.fill("#site-id", site)
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")
    expect(page).to_have_url(f"{server.base_url}/dashboard")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def post_event(server: LiveServer, session: str, site: str = SITE_ID, **fields: Any) -> None:
    body = {
        "sessionId": session,
        "siteId": site,
        "type": "page_view",
        "path": "/",
        "ts": event_time(time.perf_counter_ns()),
        **fields,
    }
    answer = httpx.post(f"{server.base_url}/api/events", json=body, timeout=5)
    assert answer.status_code == 202, answer.text
