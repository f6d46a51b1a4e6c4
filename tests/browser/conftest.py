"""Real server processes and one headless Chromium per module for the widget's browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
APP = "api.app:create_app"
API_KEY = "woodstock_rt_key_2024"
SITE_ID = "woodstock_outlet"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`uvicorn --factory api.app:create_app` in a subprocess; restartable on the same port and DB."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'teaser.db'}",
            "TEASER_ENV": "development",
            **env,
        }
        self.env.pop("REDIS_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            APP,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--timeout-graceful-shutdown",
            "2",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"server not healthy after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        # SIGTERM lets uvicorn close the sockets properly, as a deploy would; kill only if it hangs.
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

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
