"""A development server says at every start how to sign in: the dashboard's address, the
demo operator's e-mail and a one-time link, which signs in once, within 15 minutes, and
never exists in production."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.accounts import OperatorRegistry, SignInLinks, SiteRegistry, local_base_url
from realtime.accounts.sign_in_links import SIGN_IN_LINK_TTL_MS
from tests.support import ROOT, TeaserServe

DEMO_OPERATOR = "demo@woodstock.example"
LINK = re.compile(r"http://127\.0\.0\.1:(\d+)/dashboard/sign-in\?token=([\w-]+)")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


async def operator_id(engine: AsyncEngine) -> int:
    await SiteRegistry(engine).create("acme")
    operator, _ = await OperatorRegistry(engine).create("acme", "ann@shop.example")
    return operator.id


async def test_a_link_signs_in_once(engine: AsyncEngine) -> None:
    links = SignInLinks(engine)
    token = await links.issue(await operator_id(engine))

    first, second = await links.redeem(token), await links.redeem(token)

    assert first is not None and second is None


async def test_a_link_expires_and_a_made_up_one_names_nobody(engine: AsyncEngine) -> None:
    clock = Clock()
    links = SignInLinks(engine, clock=clock)
    owner = await operator_id(engine)
    late, in_time = await links.issue(owner), await links.issue(owner)

    clock.now += SIGN_IN_LINK_TTL_MS - 1
    assert await links.redeem(in_time) == owner
    clock.now += 1
    assert await links.redeem(late) is None
    assert await links.redeem("made-up") is None
    assert await links.redeem("x" * 10_000) is None
    assert await links.redeem("") is None


@pytest.mark.parametrize(
    "environ,base",
    [
        ({}, "http://127.0.0.1:8000"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"HOST": "::1", "PORT": "8001"}, "http://[::1]:8001"),
        ({"HOST": "teaser.local", "PORT": "80"}, "http://teaser.local:80"),
    ],
)
def test_the_link_names_where_teaser_serve_listens(environ: dict[str, str], base: str) -> None:
    assert local_base_url(environ) == base


def sign_in_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "teaser.dev_sign_in" in line]


def teaser_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_dev_server_prints_a_working_one_time_link_at_every_start(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}"}
    server = TeaserServe(env, tmp_path)
    server.start()
    try:
        lines = sign_in_lines(server.log())
        port, token = LINK.search(server.log()).groups()  # type: ignore[union-attr]
        with httpx.Client(base_url=server.base_url) as browser:
            signed_in = browser.get(f"/dashboard/sign-in?token={token}")
            me = browser.get("/api/operator/me")
        again = httpx.get(f"{server.base_url}/dashboard/sign-in?token={token}")
        another = teaser_cli(
            {**env, "PORT": str(server.port)}, "operator", "link", "woodstock_outlet", DEMO_OPERATOR
        )
        by_command = httpx.get(LINK.search(another.stdout)[0])  # type: ignore[index]
        server.stop()
        server.start()  # a restart prints a new link
        restarted = sign_in_lines(server.log())
    finally:
        server.stop()

    assert port == str(server.port)
    assert (
        f"Dashboard: http://127.0.0.1:{port}/dashboard, as the demo operator {DEMO_OPERATOR}"
        in (lines[0])
    )
    assert "teaser operator reset woodstock_outlet demo@woodstock.example" in lines[1]
    assert "password" not in lines[0] and "'" not in LINK.search(lines[1])[0]  # type: ignore[index]
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard"
    assert me.status_code == 200 and me.json()["operator"]["email"] == DEMO_OPERATOR
    assert again.status_code == 401 and again.json()["error"]["code"] == "sign_in_link_expired"
    assert another.returncode == 0, another.stderr
    assert by_command.status_code == 303
    assert len(restarted) == 4 and LINK.findall(restarted[3]) != LINK.findall(lines[1])


def test_a_production_server_prints_no_link_and_has_no_sign_in_page(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}",
        "TEASER_ENV": "production",
        "TEASER_SECRET_KEY": "s" * 40,
    }
    server = TeaserServe(env, tmp_path)
    server.start()
    try:
        log = server.log()  # the start's lines, before any request's
        page = httpx.get(f"{server.base_url}/dashboard/sign-in?token=anything")
    finally:
        server.stop()
    refused = teaser_cli(env, "operator", "link", "woodstock_outlet", DEMO_OPERATOR)

    assert page.status_code == 404
    assert sign_in_lines(log) == [] and "@" not in log and "sign-in?token" not in log
    assert refused.returncode == 1 and "for development only" in refused.stderr
