"""Keep personal data and secrets out of logs: e-mail addresses (page URLs carry customers'),
session tokens and API keys in URLs, and credentials in connection URLs."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

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

REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (URL_CREDENTIALS, "[credentials]@"),
    (SECRET_PARAMETER, r"\1[redacted]"),
    (API_KEY, "tk_[redacted]"),
    (EMAIL, "[email]"),
)


def redact(text: str) -> str:
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and redacts the finished line. A filter would see the
    record before formatting: not the traceback, the stack or the text an exception (say
    SQLAlchemy's, with its bound parameters) renders only when formatted."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def redact_personal_data() -> None:
    """Redact at every handler configured now: the root's (where every `teaser.*` logger
    ends up) and uvicorn's own, or those of a --log-config. Called once the server has
    configured logging; calling it again wraps only handlers added since."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                handler.setFormatter(RedactingFormatter(handler.formatter or logging.Formatter()))


def configure_logging() -> None:
    """The app's own loggers (`teaser.*`, through the root), in uvicorn's manner, redacted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    redact_personal_data()


def uvicorn_log_config() -> dict[str, Any]:
    """The `log_config` `teaser serve` hands uvicorn."""
    return copy.deepcopy(LOGGING_CONFIG)
