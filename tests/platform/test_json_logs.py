"""TEASER_LOG_FORMAT=json: every line one JSON object, uvicorn's access and WebSocket lines
as fields, each record made while handling a request with that request's id, and nothing
personal or secret in any of it. On real servers, started as users start them."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from api.logs import ACCESS_LINE, JsonFormatter, RedactingFormatter, log_format, redact
from api.request_ids import SANE_REQUEST_ID
from realtime.platform import ConfigError
from tests.platform.test_logs import ADDRESSES, EMAIL, SETTINGS
from tests.support import DEMO_SITE, ROOT, TeaserServe, new_session_id

TEASER = Path(sys.executable).parent / "teaser"


class JsonLogged(TeaserServe):
    """`teaser serve` as a user runs it, from the virtualenv's bin, with JSON logs."""

    def __init__(self, env: dict[str, str], log_dir: Path, *options: str) -> None:
        super().__init__({"TEASER_LOG_FORMAT": "json", **env}, log_dir, *options)

    def records(self) -> list[dict[str, Any]]:
        """Every line written so far (stdout and stderr), each parsed as a JSON object."""
        records = []
        for line in self.log().splitlines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
        return records

    def records_once(self, found: str) -> list[dict[str, Any]]:
        """The records, once a line holding `found` has been written."""
        deadline = time.monotonic() + 10
        while found not in self.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.records()


class UvicornServing(JsonLogged):
    """The loud app (tests/platform/test_logs.py) under `uvicorn` itself, as the Procfile
    serves Teaser: only create_app() sets the logs up."""

    def command(self) -> list[str]:
        factory = "tests.platform.test_logs:loud_app"
        return [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(self.port)]


def sqlite_env(folder: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{folder / 't.db'}", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonLogged]:
    folder = tmp_path_factory.mktemp("json-logs")
    process = JsonLogged(sqlite_env(folder), folder)
    process.start()
    yield process
    process.stop()


def access_line(records: list[dict[str, Any]], path: str) -> dict[str, Any]:
    lines = [r for r in records if r["logger"] == "uvicorn.access" and r["path"] == path]
    assert len(lines) == 1, records
    return lines[0]


def marked(path: str) -> str:
    return f"{path}?mark={time.monotonic_ns()}"


# Requests


def test_an_access_line_is_an_object_with_the_request_fields_and_the_callers_id(
    server: JsonLogged,
) -> None:
    path = marked("/healthz")
    answer = httpx.get(server.base_url + path, headers={"X-Request-ID": "caller-id-1"})

    line = access_line(server.records_once(path), path)
    assert answer.headers["X-Request-ID"] == "caller-id-1"
    assert line["request_id"] == "caller-id-1"
    assert line["level"] == "INFO"
    assert (line["client"], line["method"], line["http_version"]) == ("127.0.0.1", "GET", "1.1")
    assert line["status"] == 200 and isinstance(line["client_port"], int)
    assert 0 <= line["duration_ms"] < 60_000
    assert line["message"] == f'127.0.0.1:{line["client_port"]} - "GET {path} HTTP/1.1" 200'
    assert line["time"].endswith("+00:00")


def test_a_request_without_an_id_gets_a_new_one_in_its_answer_and_its_line(
    server: JsonLogged,
) -> None:
    paths = [marked("/healthz") for _ in range(2)]
    answers = [httpx.get(server.base_url + path) for path in paths]

    records = server.records_once(paths[-1])
    ids = [answer.headers["X-Request-ID"] for answer in answers]
    assert [access_line(records, path)["request_id"] for path in paths] == ids
    assert ids[0] != ids[1]
    assert all(len(id) == 16 and int(id, 16) >= 0 for id in ids)


@pytest.mark.parametrize(
    "offered",
    ["x" * 65, "two words", "a\tb", "jane@example.com", "<script>", "ünï", ""],
    ids=["too long", "space", "tab", "address", "markup", "not ascii", "empty"],
)
def test_an_insane_request_id_is_replaced(server: JsonLogged, offered: str) -> None:
    path = marked("/healthz")
    answer = httpx.get(server.base_url + path, headers={"X-Request-ID": offered.encode()})

    line = access_line(server.records_once(path), path)
    assert answer.headers["X-Request-ID"] == line["request_id"] != offered
    assert len(line["request_id"]) == 16


@pytest.mark.parametrize(
    "offered",
    ["0f8fad5b-d9cb-469f-a165-70867728950e", "4c7f1e0d9a2b4d3e8f6a5b4c3d2e1f0a", "Root=1-67-ab"],
    ids=["uuid", "nginx $request_id", "trace id"],
)
def test_a_sane_request_id_is_kept(offered: str) -> None:
    assert SANE_REQUEST_ID.fullmatch(offered.encode())


def test_a_poll_url_with_an_address_and_a_token_is_logged_redacted_as_json(
    server: JsonLogged,
) -> None:
    mark = str(time.monotonic_ns())
    httpx.post(
        f"{server.base_url}/api/teaser-messages",
        params={"mark": mark, "email": EMAIL, "token": "tok3nVALUE_neverShown"},
        json={"sessionId": new_session_id(), "siteId": DEMO_SITE},
        headers={"X-Request-ID": f"poll-{mark}"},
    )

    records = server.records_once(f"poll-{mark}")
    (line,) = [r for r in records if r["request_id"] == f"poll-{mark}"]
    assert line["path"] == f"/api/teaser-messages?mark={mark}&email=[email]&token=[redacted]"
    assert line["method"] == "POST" and line["status"] == 200
    assert EMAIL not in server.log() and "tok3nVALUE" not in server.log()


# WebSockets


async def open_and_close(url: str, request_id: str | None) -> None:
    headers = {"X-Request-ID": request_id} if request_id else {}
    async with connect(url, additional_headers=headers):
        pass


def test_a_session_socket_gets_a_request_id_in_its_handshake_line(server: JsonLogged) -> None:
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={DEMO_SITE}"
    asyncio.run(open_and_close(url, "socket-id-1"))
    asyncio.run(open_and_close(url + "&again=1", None))

    records = server.records_once("again=1")
    given, new = [r for r in records if session in r["message"]]
    assert given["logger"] == "uvicorn.error" and given["websocket"] is True
    assert (given["request_id"], given["status"], given["client"]) == (
        "socket-id-1",
        101,
        "127.0.0.1",
    )
    assert given["path"] == f"/api/teaser-ws?sessionId={session}&siteId={DEMO_SITE}"
    assert new["request_id"] not in (None, "socket-id-1") and new["status"] == 101


def test_a_refused_socket_logs_its_status_with_its_request_id(server: JsonLogged) -> None:
    mark = f"refused-{time.monotonic_ns()}"
    url = f"{server.ws_url}/api/teaser-ws?siteId=no_such_site&sessionId={new_session_id()}"

    with pytest.raises(InvalidStatus):
        asyncio.run(open_and_close(f"{url}&token=sekrit_{mark}", mark))

    line, rejected = [r for r in server.records_once(mark) if r["request_id"] == mark]
    assert line["status"] == 401 and line["websocket"] is True
    assert line["path"].endswith("&token=[redacted]")
    assert rejected["message"] == "connection rejected (401 Unauthorized)"


def test_every_line_of_teaser_serve_is_a_json_object(server: JsonLogged) -> None:
    records = server.records()

    assert {"uvicorn.error", "uvicorn.access"} <= {r["logger"] for r in records}
    assert any(r["message"].startswith("Uvicorn running on") for r in records)
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)


# The app's own records, under uvicorn itself (as the Procfile serves it)


def test_an_error_logged_while_handling_a_request_carries_its_id_and_no_address(
    tmp_path: Path,
) -> None:
    process = UvicornServing(sqlite_env(tmp_path), tmp_path)
    process.start()
    try:
        httpx.get(
            f"{process.base_url}/test/loud",
            params={"logger": "teaser.api", "marker": "loud"},
            headers={"X-Request-ID": "loud-1"},
        )
        records = process.records_once("stack of [email]")
    finally:
        process.stop()

    mine = [r for r in records if r["request_id"] == "loud-1"]
    error, stack, access = mine
    assert (error["logger"], error["level"]) == ("teaser.api", "ERROR")
    assert error["message"] == "loud: could not reach [email]"
    assert "LookupError: no customer [email] in {'email': '[email]'}" in error["exception"]
    assert "Stack (most recent call last)" in stack["stack"]
    assert access["logger"] == "uvicorn.access" and access["status"] == 200
    others = [r for r in records if r not in mine and r["request_id"] is not None]
    assert others and all(r["path"] == "/healthz" for r in others)
    assert EMAIL not in process.log() and "example.com" not in process.log()


# The setting


def test_a_log_format_other_than_text_or_json_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as refused:
        log_format({"TEASER_LOG_FORMAT": "yaml"})

    assert refused.value.message == (
        "Config 'TEASER_LOG_FORMAT' has value 'yaml'. Expected 'text' or 'json'."
    )
    assert log_format({}) == "text" and log_format({"TEASER_LOG_FORMAT": "json"}) == "json"


def test_teaser_serve_with_a_bad_log_format_says_so_and_exits(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, **sqlite_env(tmp_path), "TEASER_LOG_FORMAT": "JSON"}
    done = subprocess.run(
        [str(TEASER), "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert done.returncode == 1
    assert done.stderr == (
        "error: Config 'TEASER_LOG_FORMAT' has value 'JSON'. Expected 'text' or 'json'.\n"
    )


# Redaction of a JSON line: string by string, so the line stays JSON


def json_line(message: str, *args: object, exc: bool = False) -> str:
    record = logging.LogRecord("teaser.api", logging.ERROR, __file__, 1, message, args, None)
    if exc:
        try:
            raise LookupError(message)
        except LookupError:
            record.exc_info = sys.exc_info()
    return RedactingFormatter(JsonFormatter()).format(record)


# What JSON escapes, next to an address: a newline, a tab, a quote, a backslash.
ESCAPED = ["a\n{}", "\t{}\t", '"{}"', "\\{}", "{}\\", "\\\\{}\\n"]


@pytest.mark.parametrize("address", ADDRESSES)
@pytest.mark.parametrize("setting", SETTINGS + ESCAPED)
def test_a_json_line_redacts_as_a_text_line_does_and_stays_json(address: str, setting: str) -> None:
    message = setting.format(address)

    line = json_line(message, exc=True)

    record = json.loads(line)
    assert record["message"] == redact(message)
    assert record["exception"].endswith(f"LookupError: {redact(message)}")
    assert address not in line and json.dumps(address, ensure_ascii=False)[1:-1] not in line


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ('/x?token=ab"cd', '/x?token=[redacted]"cd'),
        ("/x?token=ab\\cd&n=1", "/x?token=[redacted]&n=1"),
        ("/x?api_key=tk_" + "A1b2_c3-" * 5, "/x?api_key=[redacted]"),
        ("/x?email=jane\\u0040example.com", "/x?email=[email]"),
    ],
)
def test_an_access_line_with_a_secret_next_to_a_json_escape_stays_json(
    path: str, logged: str
) -> None:
    args = ("127.0.0.1:5000", "GET", path, "1.1", 200)
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 1, ACCESS_LINE, args, None)

    fields = json.loads(RedactingFormatter(JsonFormatter()).format(record))

    assert fields["path"] == logged
    assert fields["message"] == f'127.0.0.1:5000 - "GET {logged} HTTP/1.1" 200'


def test_text_that_is_no_utf8_is_still_written_as_json() -> None:
    line = json_line("bytes from a file name: %s", b"caf\xe9".decode(errors="surrogateescape"))

    assert json.loads(line)["message"] == "bytes from a file name: caf\udce9"
