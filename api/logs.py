"""Logs as text or as JSON lines, each with its request id, and with personal data and
secrets kept out: e-mail addresses (page URLs carry customers'), session tokens and API keys
in URLs, and credentials in connection URLs."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import ColourizedFormatter

from api.request_ids import REQUEST_ID, REQUEST_SINCE
from realtime.accounts import DEV_SIGN_IN_LOGGER
from realtime.platform import ConfigError

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s:     %(name)s %(message)s"

# An e-mail address as it shows up in a log line: plain, percent-encoded once or twice (a
# page URL inside a query string), escaped in JSON (\u0040) or HTML (&#64;). The local part
# stops at what delimits it in a URL, a header or JSON, encoded or not (= & ? / : " < >
# space), so the field name before it survives; it may hold an apostrophe (o'brien@…) but
# not start with one, so a quoted address keeps its quotes. \w takes internationalised names
# (jörg@bücher.de). It starts only where a run of such characters starts: a long line with
# no address in it then costs one pass, not one per character (a request line can be 16 kB).
_AT = r"(?:@|%(?:25)?40|\\u0040|&#0*64;|&#x0*40;)"
_DELIMITER = r"(?:3[ADFadf]|2[026Ff]|3[CEce])"
_ESCAPE = rf"%(?:25)?(?!{_DELIMITER}|40)[0-9A-Fa-f]{{2}}"
_LOCAL_CHARS = r"\w!#$*+^~"
_RUN_STARTS = rf"(?:(?<![{_LOCAL_CHARS}.%-])(?<!\w')|(?<=%{_DELIMITER})|(?<=%25{_DELIMITER}))"
_LOCAL = (
    rf"{_RUN_STARTS}(?:[{_LOCAL_CHARS}-]|{_ESCAPE})"
    rf"(?:[{_LOCAL_CHARS}.-]|'(?=\w)|{_ESCAPE})*"
)
_LABEL = rf"(?:[\w-]|{_ESCAPE})+"
EMAIL = re.compile(rf"{_LOCAL}{_AT}{_LABEL}(?:(?:\.|%2[Ee]){_LABEL})*")
# The value of any query parameter named like a secret: the session socket's ?token=…, and
# an API key someone put in a URL (refused, but uvicorn logs the request line first).
SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:[\w.-]*?(?:token|key|secret|password|passwd|pwd|signature|sig|auth|"
    r"credentials?))=)[^&;#\s\"']*"
)
# An API key by its shape, wherever it is (realtime/accounts/sites.py mints them).
API_KEY = re.compile(r"\btk_[A-Za-z0-9_-]{16,}")
# user:password@ in a database or Redis URL quoted by an error.
URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s@:]*:[^/\s@]*@")

# Each pattern, after the strings one of which any match of it holds: looking for those
# first is ten times cheaper than a pass of the pattern over a line that has none, and most
# lines (most strings of a JSON line) have none.
REDACTIONS: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = (
    (("://",), URL_CREDENTIALS, "[credentials]@"),
    (("=",), SECRET_PARAMETER, r"\1[redacted]"),
    (("tk_",), API_KEY, "tk_[redacted]"),
    (("@", "%", "\\u0040", "&#"), EMAIL, "[email]"),
)


def redact(text: str) -> str:
    for marks, pattern, replacement in REDACTIONS:
        for mark in marks:
            if mark in text:
                text = pattern.sub(replacement, text)
                break
    return text


def log_format(environ: Mapping[str, str] = os.environ) -> str:
    """TEASER_LOG_FORMAT, read here and not with the Settings: `teaser serve` builds
    uvicorn's logging before there is an app, or Settings."""
    value = environ.get("TEASER_LOG_FORMAT", "text")
    if value not in LOG_FORMATS:
        raise ConfigError(
            f"Config 'TEASER_LOG_FORMAT' has value '{value}'. Expected 'text' or 'json'."
        )
    return value


# uvicorn's own lines (0.54), known by their format string: the names of their arguments,
# and what the format says without an argument. tests/platform/test_json_logs.py fails
# if uvicorn words them otherwise.
ACCESS_LINE = '%s - "%s %s HTTP/%s" %d'
UVICORN_LINES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    ACCESS_LINE: (("client", "method", "path", "http_version", "status"), {}),
    '%s - "WebSocket %s" [accepted]': (("client", "path"), {"websocket": True, "status": 101}),
    '%s - "WebSocket %s" %d': (("client", "path", "status"), {"websocket": True}),
    '%s - "WebSocket %s" 403': (("client", "path"), {"websocket": True, "status": 403}),
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and request id; uvicorn's
    access and WebSocket lines also as fields; a traceback or a stack as text."""

    def format(self, record: logging.LogRecord) -> str:
        return self.dumps(self.fields(record))

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        request_id = REQUEST_ID.get()
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id,
        }
        line = UVICORN_LINES.get(record.msg) if isinstance(record.msg, str) else None
        if line is not None and isinstance(record.args, tuple):
            fields.update(_uvicorn_fields(line, record.args))
            if record.msg == ACCESS_LINE and request_id is not None:
                # uvicorn writes the line as the response starts: the time to the first byte.
                fields["duration_ms"] = round((record.created - REQUEST_SINCE.get()) * 1000, 3)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return fields

    @staticmethod
    def dumps(fields: Mapping[str, Any]) -> str:
        try:
            return orjson.dumps(fields).decode()
        except orjson.JSONEncodeError:
            # A lone surrogate (bytes decoded with surrogateescape) is no UTF-8: the
            # standard library writes it as an escape instead.
            return json.dumps(fields)


def _uvicorn_fields(
    line: tuple[tuple[str, ...], dict[str, Any]], args: tuple[object, ...]
) -> dict[str, Any]:
    names, constants = line
    fields = {**dict(zip(names, args, strict=False)), **constants}
    client = fields.get("client")
    if isinstance(client, str):
        host, _, port = client.rpartition(":")
        fields["client"] = host or None
        fields["client_port"] = int(port) if port.isdigit() else None
    return fields


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and redacts the finished line. A filter would see the
    record before formatting: not the traceback, the stack or the text an exception (say
    SQLAlchemy's, with its bound parameters) renders only when formatted.

    A JSON line is redacted string by string before it is written: redacting the written
    line would cut through JSON's escapes (`"a\\nb@c.de"` would become `"a\\[email]"`,
    no longer JSON) and miss an address whose backslash JSON doubled."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        # The one exception: a dev server's lines on how to sign in name the demo operator
        # and a one-time link, made of constants and a fresh token only; production never
        # writes them (realtime/runtime.py, docs/guarantees.md).
        keep = record.name == DEV_SIGN_IN_LOGGER
        if isinstance(self.inner, JsonFormatter):
            fields = self.inner.fields(record)
            return self.inner.dumps(
                {
                    name: redact(value) if isinstance(value, str) and not keep else value
                    for name, value in fields.items()
                }
            )
        line = self.inner.format(record)
        return line if keep else redact(line)


def redact_personal_data() -> None:
    """Redact at every handler configured now: the root's (where every `teaser.*` logger
    ends up) and uvicorn's own, or those of a --log-config. Called once the server has
    configured logging; calling it again wraps only handlers added since."""
    for logger in _every_logger():
        for handler in logger.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                handler.setFormatter(RedactingFormatter(handler.formatter or logging.Formatter()))


def configure_logging() -> None:
    """The app's own loggers (`teaser.*`, through the root) in TEASER_LOG_FORMAT, redacted.
    In JSON, uvicorn's own handlers are switched too, for a server started by `uvicorn`
    itself (the Procfile) rather than by `teaser serve`."""
    if log_format() == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
        _uvicorn_handlers_to_json()
    else:
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
    redact_personal_data()


def uvicorn_log_config() -> dict[str, Any]:
    """The `log_config` `teaser serve` hands uvicorn: uvicorn's own, in TEASER_LOG_FORMAT."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format() == "json":
        config["formatters"] = {name: {"()": JsonFormatter} for name in config["formatters"]}
    return config


def _uvicorn_handlers_to_json() -> None:
    """Only handlers with uvicorn's own text formatters: a --log-config's are its own."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            formatter = handler.formatter
            if isinstance(formatter, RedactingFormatter):
                formatter = formatter.inner
            if isinstance(formatter, ColourizedFormatter):
                handler.setFormatter(JsonFormatter())


def _every_logger() -> list[logging.Logger]:
    return [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
