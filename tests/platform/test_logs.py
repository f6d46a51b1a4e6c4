"""Logs keep no personal data and no secrets: every logger, every handler, tracebacks and
database errors included, on a real server writing to real stderr and stdout."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from api.app import create_app
from api.auth import runtime_of
from api.logs import JsonFormatter, RedactingFormatter, redact
from api.wsprotocol import LEAN_WEBSOCKETS
from realtime.accounts import DEV_SIGN_IN_LOGGER
from realtime.platform.tables import operators
from tests.support import DEMO_SITE, ROOT, OnLoopback, free_port, new_session_id

EMAIL = "jane.doe+shop@example.com"

# Loggers that are not named in Teaser's code but carry its errors: the root (where
# every `teaser.*` logger's records end up), uvicorn's own, and asyncio's ("Task exception
# was never retrieved" comes with a traceback).
OTHER_LOGGERS = ("", "uvicorn", "uvicorn.error", "asyncio", "sqlalchemy.engine")


def loggers_in_code() -> list[str]:
    """Every logger name api/ and realtime/ ask for, found in the source: a new one is tried
    here without anyone adding it."""
    pattern = re.compile(r"""getLogger\(\s*["']([\w.]+)["']\s*\)""")
    names = {
        name
        for folder in ("api", "realtime")
        for path in (ROOT / folder).rglob("*.py")
        for name in pattern.findall(path.read_text())
    }
    return sorted(names)


def every_logger() -> list[str]:
    return sorted(set(loggers_in_code()) | set(OTHER_LOGGERS))


# The app under test: Teaser's own, plus two routes that log the way failures do.


async def loud(request: Request) -> Response:
    """Log through the named logger a line, a traceback and a stack, each with an address."""
    name = request.query_params["logger"]
    try:
        raise LookupError(f"no customer {EMAIL} in {{'email': '{EMAIL}'}}")
    except LookupError:
        logging.getLogger(name).error(
            "%s: could not reach %s", request.query_params["marker"], EMAIL, exc_info=True
        )
    logging.getLogger(name).error("stack of %s", EMAIL, stack_info=True)
    return PlainTextResponse("logged")


async def duplicate_operator(request: Request) -> Response:
    """Insert one operator twice: the database refuses the second, and the error names the
    row's values (SQLAlchemy's bound parameters, PostgreSQL's DETAIL: Key (…)=(…))."""
    row = {
        "site_id": DEMO_SITE,
        "email": EMAIL,
        "password_hash": "x",
        "created_at": 0,
        "password_changed_at": 0,
    }
    async with runtime_of(request).engine.begin() as connection:
        await connection.execute(insert(operators).values(row))
        await connection.execute(insert(operators).values(row))
    return PlainTextResponse("not refused")


def loud_app() -> Starlette:
    app = create_app()
    app.add_route("/test/loud", loud)
    app.add_route("/test/duplicate-operator", duplicate_operator)
    return app


class LoggingServer(OnLoopback):
    """The app under uvicorn with its shipped logging, as the Procfile and `teaser serve`
    run it (their own log configuration, no --log-config), both streams kept in a file."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = log
        # No drain on SIGTERM: stopping needn't wait out what a deploy gets.
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TEASER_ENV": "development",
            "TEASER_DRAIN_SECONDS": "0",
            **env,
        }
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log()}")

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_once_it_shows(self, text: str) -> str:
        deadline = time.monotonic() + 10
        while text not in (log := self.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return log


def uvicorn_serving(factory: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--ws", LEAN_WEBSOCKETS]


def teaser_serve() -> list[str]:
    return [sys.executable, "-m", "api.cli", "serve"]


@pytest.fixture(scope="module")
def loud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggingServer]:
    folder = tmp_path_factory.mktemp("loud")
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'teaser.db'}"}
    server = LoggingServer(
        uvicorn_serving("tests.platform.test_logs:loud_app"), folder / "server.log", env
    )
    server.start()
    yield server
    server.stop()


def assert_redacted(log: str, *secrets: str) -> None:
    for secret in (EMAIL, "example.com", *secrets):
        assert secret not in log, f"{secret!r} is in the log:\n{log}"


def test_every_logger_the_code_uses_is_found() -> None:
    found = loggers_in_code()
    assert {"teaser", "teaser.api", "teaser.hub", "teaser.broker.redis"} <= set(found)


@pytest.mark.parametrize("name", every_logger())
def test_a_logger_never_writes_an_address_in_a_line_a_traceback_or_a_stack(
    loud_server: LoggingServer, name: str
) -> None:
    marker = f"marker-{name or 'root'}-{time.monotonic_ns()}"
    answer = httpx.get(
        f"{loud_server.base_url}/test/loud", params={"logger": name, "marker": marker}
    )
    assert answer.status_code == 200

    log = loud_server.log_once_it_shows("stack of [email]")
    record = log[log.index(marker) :]
    assert f"{marker}: could not reach [email]" in record
    assert "LookupError: no customer [email] in {'email': '[email]'}" in record
    assert "Stack (most recent call last)" in record
    assert_redacted(log)


def test_a_database_error_logs_neither_its_parameters_nor_the_values_it_quotes(
    database_url: str, tmp_path: Path
) -> None:
    server = LoggingServer(
        uvicorn_serving("tests.platform.test_logs:loud_app"),
        tmp_path / "server.log",
        {"DATABASE_URL": database_url},
    )
    server.start()
    try:
        answer = httpx.get(f"{server.base_url}/test/duplicate-operator")
        log = server.log_once_it_shows("IntegrityError")
    finally:
        server.stop()

    assert answer.status_code == 500
    assert "unhandled error on GET /test/duplicate-operator" in log
    assert "IntegrityError" in log and "[SQL parameters hidden" in log
    assert_redacted(log)


def test_teaser_serve_keeps_addresses_tokens_and_keys_out_of_request_lines(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}"}
    server = LoggingServer(teaser_serve(), tmp_path / "server.log", env)
    server.start()
    token, key = "tok3nVALUE_shouldNeverShow", "tk_" + "k3yVALUE_shouldNeverShow" * 2
    try:
        httpx.get(f"{server.base_url}/demo", params={"customer_email": EMAIL})
        httpx.get(f"{server.base_url}/demo", params={"email": EMAIL.replace("@", "%40")})
        httpx.get(f"{server.base_url}/api/teaser-messages/x", params={"api_key": key})
        httpx.get(f"{server.base_url}/healthz", headers={"X-API-Key": key})
        asyncio.run(_open_socket(server.ws_url, token))
        log = server.log_once_it_shows("teaser-ws")
    finally:
        server.stop()

    assert "/demo?customer_email=[email]" in log
    assert "api_key=[redacted]" in log
    assert "token=[redacted]" in log
    assert_redacted(log, token, key, key[3:])


async def _open_socket(ws_url: str, token: str) -> None:
    query = f"siteId={DEMO_SITE}&sessionId={new_session_id()}&token={token}"
    with pytest.raises(InvalidStatus):
        async with connect(f"{ws_url}/api/teaser-ws?{query}"):
            pass


# A refused socket is a 4xx in the access line, never an ERROR.


@pytest.fixture(scope="module")
def teaser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggingServer]:
    folder = tmp_path_factory.mktemp("serve")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'teaser.db'}",
        "TEASER_LIMIT_SOCKETS_PER_IP": "2",
    }
    server = LoggingServer(teaser_serve(), folder / "server.log", env)
    server.start()
    yield server
    server.stop()


def session_socket(**query: str) -> str:
    return "/api/teaser-ws?" + "&".join(f"{name}={value}" for name, value in query.items())


REFUSALS = {
    "origin not allowed": (
        session_socket(siteId=DEMO_SITE, sessionId="sess_1_origin"),
        "https://elsewhere.example",
        403,
    ),
    "wrong session token": (
        session_socket(siteId=DEMO_SITE, sessionId="sess_1_token", token="x" * 32),
        None,
        401,
    ),
    "unknown site": (session_socket(siteId="no_such_site", sessionId="sess_1_site"), None, 401),
    "no session": (session_socket(siteId=DEMO_SITE), None, 422),
    "malformed session": (session_socket(siteId=DEMO_SITE, sessionId="sess%201"), None, 422),
    "over the sockets per address": (
        session_socket(siteId=DEMO_SITE, sessionId="sess_1_third"),
        None,
        429,
    ),
    "dashboard, not signed in": ("/api/dashboard/ws", None, 401),
    "dashboard, another site's page": ("/api/dashboard/ws", "https://elsewhere.example", 403),
}


async def refused_status(ws_url: str, path: str, origin: str | None, holding: int) -> int:
    """Open `holding` sockets, then the one to refuse; the status it was refused with."""
    url = f"{ws_url}/api/teaser-ws?siteId={DEMO_SITE}&sessionId="
    held = [await connect(url + new_session_id()) for _ in range(holding)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url + path, origin=origin):  # type: ignore[arg-type]
                pass
        return refused.value.response.status_code
    finally:
        for socket in held:
            await socket.close()


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refused_socket_logs_its_status_and_no_error(
    teaser_server: LoggingServer, refusal: str
) -> None:
    path, origin, status = REFUSALS[refusal]
    marker = f"refusal-{time.monotonic_ns()}"
    httpx.get(f"{teaser_server.base_url}/healthz", params={"before": marker})
    holding = 2 if status == 429 else 0
    got = asyncio.run(refused_status(teaser_server.ws_url, path, origin, holding))
    httpx.get(f"{teaser_server.base_url}/healthz", params={"after": marker})

    log = teaser_server.log_once_it_shows(f"after={marker}")
    during = log[log.index(f"before={marker}") : log.index(f"after={marker}")]
    assert got == status
    assert f'"WebSocket {path.split("?")[0]}' in during and f"{status}\n" in during
    assert "ERROR" not in during and "Traceback" not in during, during


# The redaction itself, over the shapes an address or a secret takes in a log line.

ADDRESSES = [
    "jane@example.com",
    "Jane.Doe@Example.COM",
    "jane.doe+shop@example.com",  # plus-addressing
    "o'brien@example.ie",
    "jane_doe-1@mail.example.co.uk",
    "jörg@bücher.de",  # internationalised, both parts
    "jane@xn--bcher-kva.de",  # the same domain in punycode
    "user@localhost",
    "jane%40example.com",  # percent-encoded, as in a query string
    "jane%2Bshop%40example.com",
    "j%C3%B6rg%40b%C3%BCcher.de",
    "jane%252Bshop%2540example.com",  # encoded twice: a page URL inside a query string
    "jane\\u0040example.com",  # JSON's escape
    "jane&#64;example.com",  # HTML's
]

SETTINGS = [
    "{}",
    "GET /demo?customer_email={} HTTP/1.1",
    "/p?a=1&email={}&b=2",
    '{{"email":"{}","n":1}}',
    "{{'email': '{}'}}",
    "[parameters: ('woodstock_outlet', '{}', 'x')]",
    "Key (site_id, email)=(woodstock_outlet, {}) already exists.",
    "mail <{}>.",
    "mailto:{}",
    "url=https%3A%2F%2Fshop.example%2Fp%3Femail%3D{}%26x%3D1",
]


@pytest.mark.parametrize("address", ADDRESSES)
@pytest.mark.parametrize("setting", SETTINGS)
def test_an_address_in_any_shape_and_setting_is_redacted_and_only_it(
    address: str, setting: str
) -> None:
    line = setting.format(address)
    assert redact(line) == setting.format("[email]")


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ("/api/teaser-ws?s=w&token=Ab_9-x&p=/", "/api/teaser-ws?s=w&token=[redacted]&p=/"),
        ("/x?api_key=woodstock_rt_key_2024", "/x?api_key=[redacted]"),
        ("/x?a=1&sessionToken=abc;key=zz", "/x?a=1&sessionToken=[redacted];key=[redacted]"),
        ("/x?access_token=abc#frag", "/x?access_token=[redacted]#frag"),
        ("key tk_" + "A1b2_c3-" * 5 + "z", "key tk_[redacted]"),
        ("postgresql+asyncpg://teaser:pw@db:5432/t", "postgresql+asyncpg://[credentials]@db:5432/t"),
        ("redis://:s3cret@cache:6379/0 down", "redis://[credentials]@cache:6379/0 down"),
    ],
)  # fmt: skip
def test_secrets_in_urls_are_redacted(line: str, redacted: str) -> None:
    assert redact(line) == redacted


@pytest.mark.parametrize(
    "line",
    [
        '127.0.0.1:5000 - "POST /api/teaser-messages HTTP/1.1" 202',
        "delivery to sess_1712345678901_abc123xyz stopped: TimeoutError()",
        "    @asynccontextmanager",
        "at 12:30:01 on 2024-05-01, user ids 42 and 43",
        "/api/teaser-ws?siteId=woodstock_outlet&sessionId=sess_1_a&since=4",
        "rules for site woodstock_outlet loaded from /etc/teaser/rules.toml",
    ],
)
def test_lines_without_personal_data_or_secrets_are_left_alone(line: str) -> None:
    assert redact(line) == line


# The one exception: a development server's lines on how to sign in (docs/guarantees.md).


def formatted(name: str, json: bool) -> str:
    record = logging.LogRecord(
        name, logging.WARNING, __file__, 1, "as %s: %s", (EMAIL, "/x?token=Ab_9"), None
    )
    inner = JsonFormatter() if json else logging.Formatter("%(name)s %(message)s")
    return RedactingFormatter(inner).format(record)


@pytest.mark.parametrize("json", [False, True], ids=["text", "json"])
def test_only_the_dev_sign_in_logger_writes_its_lines_unredacted(json: bool) -> None:
    kept = formatted(DEV_SIGN_IN_LOGGER, json)
    others = [formatted(name, json) for name in ("teaser", f"{DEV_SIGN_IN_LOGGER}.x", "teaser.dev")]

    assert EMAIL in kept and "token=Ab_9" in kept
    for line in others:
        assert EMAIL not in line and "[email]" in line and "token=[redacted]" in line


def test_a_dev_server_names_an_address_only_in_its_sign_in_lines(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'teaser.db'}"}
    server = LoggingServer(teaser_serve(), tmp_path / "server.log", env)
    server.start()
    try:
        httpx.get(f"{server.base_url}/demo", params={"customer_email": EMAIL})
        log = server.log_once_it_shows("/demo?customer_email=[email]")
    finally:
        server.stop()

    with_an_address = [line for line in log.splitlines() if "@" in line]
    assert len(with_an_address) == 2, log  # the dashboard's line and the link's
    assert all(f" {DEV_SIGN_IN_LOGGER} " in line for line in with_an_address), log
    assert_redacted(log)
