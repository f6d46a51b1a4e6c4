"""uvicorn's access line, written for a fraction of what the logging module charges.

Through `logging`, each line cost a LogRecord, a look up the stack for its caller, two
copies of the record in uvicorn's formatter, a lock and a flush (a write to the pipe per
request): 18 µs a line, a third of what answering an idle poll costs, and 40 % of idle-poll
throughput lost with the access log on, which is how `teaser serve` ships. Here the same
line (same text, or the same JSON fields, redacted alike) is formatted directly and
written to the handler's own stream at most every FLUSH_SECONDS, in one write: many lines
per write under load, and a lone line still out within that (and at exit).

Any other line (uvicorn's own, a WebSocket's, the app's) writes the held lines first, so
that where stdout and stderr go to one place, lines stay in the order they happened.

Only for the configuration `teaser serve` gives uvicorn's access logger (one stream
handler, uvicorn's formatter without colours, or Teaser's JSON one, redacted). Any other
(a --log-config, a terminal's colours, a test's handler) gets the logging module as before.
"""

from __future__ import annotations

import asyncio
import atexit
import http
import logging
import time
from contextlib import suppress
from datetime import UTC, datetime
from multiprocessing.util import Finalize
from typing import IO, Any

from uvicorn.logging import AccessFormatter

from api.logs import JsonFormatter, RedactingFormatter, redact
from api.request_ids import REQUEST_ID, REQUEST_SINCE

ACCESS_LOGGER = "uvicorn.access"
FLUSH_SECONDS = 0.1
# What uvicorn's formatter puts before an INFO line: the level, a colon, padding to 9.
TEXT_PREFIX = "INFO:     "
PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


class AccessLog:
    """Stands in for the `uvicorn.access` logger in an HTTP protocol: `info()` is all the
    protocol calls on it, with uvicorn's access line and its five arguments."""

    def __init__(self, handler: logging.StreamHandler[IO[str]], json: bool) -> None:
        self.handler = handler
        self.stream = handler.stream
        self.json = json
        # Kept here, not in the stream's buffer: with PYTHONUNBUFFERED (as containers often
        # set it) every write to the stream would be a write to the pipe.
        self._lines: list[str] = []
        self._flushing: asyncio.TimerHandle | None = None
        # What is still held when the worker stops: atexit for a server in the main
        # process; a worker process of `--workers N` runs multiprocessing's finalizers.
        atexit.register(self.flush)
        Finalize(None, self.flush, exitpriority=10)

    def info(self, message: str, *args: Any) -> None:
        client, method, path, http_version, status = args
        if self.json:
            line = self._json_line(message % args, client, method, path, http_version, status)
        else:
            request = redact(f'{client} - "{method} {path} HTTP/{http_version}"')
            line = f"{TEXT_PREFIX}{request} {status} {PHRASES.get(status, '')}"
        self._lines.append(line)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self._flushing = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        lines.append("")
        with suppress(ValueError, OSError):  # a stream closed, or a pipe gone
            self.stream.write("\n".join(lines))
            self.stream.flush()

    def _json_line(
        self, message: str, client: str, method: str, path: str, version: str, status: int
    ) -> str:
        host, _, port = client.rpartition(":")
        now = time.time()
        request_id = REQUEST_ID.get()
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": ACCESS_LOGGER,
            "message": redact(message),
            "request_id": request_id,
            "client": host or None,
            "method": method,
            "path": redact(path),
            "http_version": version,
            "status": status,
            "client_port": int(port) if port.isdigit() else None,
        }
        if request_id is not None:
            # uvicorn writes the line as the response starts: the time to the first byte.
            fields["duration_ms"] = round((now - REQUEST_SINCE.get()) * 1000, 3)
        return JsonFormatter.dumps(fields)


_cached: tuple[list[logging.Handler], AccessLog] | None = None


def access_log(logger: logging.Logger) -> logging.Logger | AccessLog:
    """What the protocol should write its access lines to: an AccessLog where the logger is
    configured as `teaser serve` configures it, else the logger itself."""
    global _cached
    if _cached is not None and _cached[0] == logger.handlers:
        return _cached[1]
    fast = _fast_for(logger)
    if fast is None:
        return logger
    _cached = (list(logger.handlers), fast)
    _flush_before_other_lines(fast, logger.handlers[0])
    return fast


class _FlushFirst(logging.Filter):
    """On every other handler: the access lines held so far go out before its line."""

    def __init__(self, access: AccessLog) -> None:
        super().__init__()
        self.access = access

    def filter(self, record: logging.LogRecord) -> bool:
        self.access.flush()
        return True


def _flush_before_other_lines(access: AccessLog, own: logging.Handler) -> None:
    loggers = [
        logging.getLogger(),
        logging.getLogger("uvicorn"),
        logging.getLogger("uvicorn.error"),
    ]
    for handler in {id(h): h for each in loggers for h in each.handlers}.values():
        if handler is not own and not any(isinstance(f, _FlushFirst) for f in handler.filters):
            handler.addFilter(_FlushFirst(access))


def _fast_for(logger: logging.Logger) -> AccessLog | None:
    if logger.propagate or not logger.isEnabledFor(logging.INFO) or len(logger.handlers) != 1:
        return None
    handler = logger.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.filters or logger.filters:
        return None
    formatter = handler.formatter
    if not isinstance(formatter, RedactingFormatter):
        return None  # lines that are not redacted are not Teaser's configuration
    inner = formatter.inner
    if type(inner) is JsonFormatter:
        return AccessLog(handler, json=True)
    if type(inner) is AccessFormatter and not inner.use_colors and _uvicorn_text(inner):
        return AccessLog(handler, json=False)
    return None


def _uvicorn_text(formatter: AccessFormatter) -> bool:
    """uvicorn's own format string, not one a --log-config gave it."""
    return formatter._fmt == '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
