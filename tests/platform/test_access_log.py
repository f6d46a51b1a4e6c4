"""The access log `teaser serve` ships with: the very lines the logging module would write
(text or JSON, redacted alike), written in batches, none lost, a lone one out at once."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from api.access_log import FLUSH_SECONDS, AccessLog, access_log
from api.logs import ACCESS_LINE, JsonFormatter, RedactingFormatter
from api.request_ids import REQUEST_ID, REQUEST_SINCE
from tests.support import DEMO_SITE, TeaserServe, new_session_id

REQUESTS = [
    ("127.0.0.1:40344", "POST", "/api/teaser-messages", "1.1", 200),
    ("10.0.0.7:51000", "GET", "/api/teaser-ws?sessionId=s&token=abc.def", "1.1", 403),
    ("[::1]:8000", "GET", "/p?email=ann%40shop.example&x=1", "1.0", 301),
    ("", "PUT", "/api/teaser-messages?key=tk_0123456789abcdefXYZ", "2", 499),  # no phrase
]


def logging_module_line(formatter: logging.Formatter, args: tuple[object, ...]) -> str:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, ACCESS_LINE, args, None)
    return RedactingFormatter(formatter).format(record)


def fast_lines(json_lines: bool, requests: list[tuple[object, ...]]) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)

    async def write() -> None:
        fast = AccessLog(handler, json=json_lines)
        for args in requests:
            fast.info(ACCESS_LINE, *args)
        fast.flush()

    asyncio.run(write())
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("args", REQUESTS, ids=[r[2] for r in REQUESTS])
def test_a_text_line_is_the_one_uvicorns_formatter_writes_redacted(args: tuple) -> None:
    formatter = AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )

    assert fast_lines(False, [args]) == [logging_module_line(formatter, args)]


@pytest.mark.parametrize("args", REQUESTS, ids=[r[2] for r in REQUESTS])
def test_a_json_line_has_the_fields_teasers_json_formatter_writes(args: tuple) -> None:
    REQUEST_ID.set("req-1")
    REQUEST_SINCE.set(time.time())
    expected = json.loads(logging_module_line(JsonFormatter(), args))
    [line] = fast_lines(True, [args])
    written = json.loads(line)

    assert list(written) == list(expected)  # the same fields, in the same order
    for clock in ("time", "duration_ms"):
        del written[clock], expected[clock]
    assert written == expected
    assert "abc.def" not in line and "ann" not in line and "0123456789" not in line


def test_lines_are_held_until_a_flush_and_written_in_one_go() -> None:
    stream = io.StringIO()
    writes: list[str] = []
    stream.write = lambda text: writes.append(text) or len(text)  # type: ignore[method-assign]
    handler = logging.StreamHandler(stream)

    async def burst() -> tuple[int, int]:
        fast = AccessLog(handler, json=False)
        for args in REQUESTS * 25:
            fast.info(ACCESS_LINE, *args)
        held = len(writes)
        await asyncio.sleep(FLUSH_SECONDS * 3)
        return held, len(writes)

    held, after = asyncio.run(burst())

    assert (held, after) == (0, 1)
    assert writes[0].count("\n") == 100 and writes[0].endswith("\n")


def configured_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.Logger("uvicorn.access-under-test", logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


def test_any_other_logging_configuration_keeps_the_logging_module() -> None:
    text = AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    colours = AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=True
    )
    own_format = AccessFormatter("%(client_addr)s %(request_line)s", use_colors=False)

    def handler(formatter: logging.Formatter) -> logging.Handler:
        stream_handler = logging.StreamHandler(io.StringIO())
        stream_handler.setFormatter(formatter)
        return stream_handler

    shipped = configured_logger(handler(RedactingFormatter(text)))
    json_shipped = configured_logger(handler(RedactingFormatter(JsonFormatter())))
    others = [
        configured_logger(handler(RedactingFormatter(colours))),  # a terminal
        configured_logger(handler(RedactingFormatter(own_format))),  # a --log-config
        configured_logger(handler(text)),  # not redacted: not Teaser's configuration
        configured_logger(logging.FileHandler(Path("/dev/null"))),
    ]
    quiet = configured_logger(handler(RedactingFormatter(text)))
    quiet.setLevel(logging.WARNING)
    two = configured_logger(handler(RedactingFormatter(text)))
    two.addHandler(handler(RedactingFormatter(text)))

    assert isinstance(access_log(shipped), AccessLog)
    assert isinstance(access_log(json_shipped), AccessLog)
    assert [access_log(logger) for logger in [*others, quiet, two]] == [*others, quiet, two]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeaserServe]:
    folder = tmp_path_factory.mktemp("access-log")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 't.db'}",
        "PYTHONUNBUFFERED": "1",  # as the container image sets it
        "TEASER_LIMIT_POLLS_PER_IP_PER_SECOND": "0",
        "TEASER_LIMIT_POLLS_PER_SESSION_PER_MINUTE": "0",
    }
    server = TeaserServe(env, folder)
    server.start()
    yield server
    server.stop()


def access_lines(server: TeaserServe, path: str) -> list[str]:
    return [line for line in server.log().splitlines() if f'"POST {path} HTTP/1.1"' in line]


def test_teaser_serve_writes_a_line_for_every_request_of_a_burst(served: TeaserServe) -> None:
    path = f"/api/teaser-messages?burst={new_session_id()}"
    body = {"sessionId": new_session_id(), "siteId": DEMO_SITE}

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=served.base_url) as client:
            answers = await asyncio.gather(*(client.post(path, json=body) for _ in range(300)))
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(burst())
    deadline = time.monotonic() + 5
    while len(access_lines(served, path)) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert statuses == [200] * 300
    assert len(access_lines(served, path)) == 300


def test_teaser_serve_writes_a_lone_requests_line_at_once(served: TeaserServe) -> None:
    path = f"/api/teaser-messages?lone={new_session_id()}"
    httpx.post(served.base_url + path, json={"sessionId": new_session_id(), "siteId": DEMO_SITE})
    sent = time.monotonic()
    while not access_lines(served, path) and time.monotonic() - sent < 5:
        time.sleep(0.01)

    assert len(access_lines(served, path)) == 1
    assert time.monotonic() - sent < 1  # within the flush interval, not at the next burst
