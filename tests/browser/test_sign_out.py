"""Signing out in a real Chromium: "Sign out" ends this browser's session only, "Sign out
everywhere" also sends the operator's other open dashboard to sign in, by itself."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("browser tests need the playwright package", allow_module_level=True)

from tests.support import ROOT

from .conftest import SITE_ID, LiveServer


def new_operator(server: LiveServer) -> tuple[str, str]:
    email = f"op-{uuid.uuid4().hex[:8]}@woodstock.example"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "operator", "add", SITE_ID, email],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return email, done.stdout.strip().rsplit(": ", 1)[1]


def signed_in_page(browser: Browser, server: LiveServer, account: tuple[str, str]) -> Page:
    """A browser of its own (its own cookies) with the dashboard open and live."""
    page = browser.new_context().new_page()
    page.goto(f"{server.base_url}/dashboard/login")
    page.fill("#site-id", SITE_ID)
    page.fill("#email", account[0])
    page.fill("#password", account[1])
    page.click("#sign-in")
    expect(page).to_have_url(f"{server.base_url}/dashboard")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page


@pytest.mark.parametrize(
    ("button", "other_stays"), [("#sign-out", True), ("#sign-out-everywhere", False)]
)
def test_signing_out_here_or_everywhere_in_the_browser(
    server: LiveServer, browser: Browser, button: str, other_stays: bool
) -> None:
    account = new_operator(server)
    laptop, phone = (signed_in_page(browser, server, account) for _ in range(2))
    login = f"{server.base_url}/dashboard/login"
    try:
        laptop.click(button)
        expect(laptop).to_have_url(login)
        if other_stays:
            phone.reload()
            expect(phone).to_have_url(f"{server.base_url}/dashboard")
            expect(phone.locator("#connection")).to_have_attribute("data-state", "live")
        else:
            # Nobody touches the phone: its live socket is closed, and it goes to sign in.
            expect(phone).to_have_url(login, timeout=3_000)
            phone.goto(f"{server.base_url}/dashboard")
            expect(phone).to_have_url(login)
        laptop.goto(f"{server.base_url}/dashboard")
        expect(laptop).to_have_url(login)
    finally:
        laptop.context.close()
        phone.context.close()
