"""The HTTP protocol Teaser serves with: uvicorn's httptools protocol, with a bound on the
size of a request head and on the time a connection may take to send one.

httptools has neither. It buffers a header of any length (64 MiB took 8.7 s and 64 MiB of
memory), and uvicorn starts no clock until a first response is sent, so a connection that
never finishes its head (slowloris) or sends nothing stays open for ever. Here:

- a head (request line and headers) longer than TEASER_MAX_HEADER_BYTES gets 431, and no
  more of it than that is ever handed to the parser;
- a connection that has not sent a whole head TEASER_HEADER_TIMEOUT seconds after it was
  opened, or after the first byte of a later request, is closed (408 if it had begun one);
- an idle keep-alive connection is closed by uvicorn's own `timeout_keep_alive`.

Bodies are counted by api/limits.py, not here, and a connection upgraded to a WebSocket
has left this protocol for the WebSocket one before any of these clocks could fire.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from api.access_log import access_log
from api.responses import error_body
from realtime.platform import Settings

# What `teaser serve` and the Procfile pass to uvicorn as --http.
HEAD_LIMITED_HTTP = "api.httpprotocol:HeadLimitedHttpProtocol"
# In the lifespan's state: what to call as the server begins to stop, before it waits for
# the answers under way. Held polls answer then, instead of holding the shutdown up.
SERVER_STOPPING = "teaser.server_stopping"
# In a request's scope: what to call if its client goes away before the answer is complete.
# A held poll ends then, instead of claiming a teaser for a connection that is gone.
CLIENT_GONE = "teaser.client_gone"

# After refusing a request, go on reading (and dropping) what the client still sends for
# this long before closing. Closing with unread bytes makes the kernel send a reset, which
# can reach the client before the answer does; nginx's lingering close does the same.
LINGER_SECONDS = 2.0


@functools.cache
def head_limits() -> tuple[int, float]:
    """TEASER_MAX_HEADER_BYTES and TEASER_HEADER_TIMEOUT, read once per worker."""
    settings = Settings.from_environ()
    return settings.max_header_bytes, settings.header_timeout


class HeadLimitedHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # The cheap writer of the same access lines, where logging is configured as shipped.
        self.access_logger = access_log(self.access_logger)  # type: ignore[assignment]
        self.max_head_bytes, self.head_timeout = head_limits()
        # From the connection's start, or the end of the last request, to a whole head.
        self.reading_head = True
        self.head_bytes = 0
        self.head_begun = False  # a byte of the next request has been parsed
        self.heads_completed = 0
        self.upgrading = False  # handed to the WebSocket protocol once this head is read
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            gone = cycle.scope.get(CLIENT_GONE)
            if callable(gone):
                gone()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """uvicorn calls this on every connection as it begins to stop."""
        stopping = self.app_state.get(SERVER_STOPPING)
        if callable(stopping):
            stopping()
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # lingering after a refusal: read, and drop
        if self.reading_head:
            room = self.max_head_bytes - self.head_bytes
            if len(data) > room:
                self._feed_past_room(memoryview(data), room)
                return
            # A whole chunk counts even if the head ends inside it: harmless, as the count
            # restarts when the request is complete. Bytes of a next request that arrive in
            # the same chunk as this one's end are not counted, so a pipelined head may pass
            # the limit by less than one read from the socket (256 KiB at most, in asyncio
            # and uvloop): what the parser holds stays bounded all the same.
            self.head_bytes += len(data)
        super().data_received(data)
        if self.head_begun and self.head_timer is None and self._idle():
            self._start_head_clock()

    def _feed_past_room(self, data: memoryview, room: int) -> None:
        """Only `room` more bytes of this head may reach the parser: feed those, and go on
        if the head ended within them, or refuse it."""
        completed = self.heads_completed
        self.head_bytes += room
        super().data_received(data[:room])  # type: ignore[arg-type]
        if self.refused or self.transport.get_protocol() is not self:
            return  # answered 400, or upgraded to a WebSocket
        if self.heads_completed == completed:
            self._log_refusal("431", self._too_large_message())
            self._refuse(431, "headers_too_large", self._too_large_message())
            return
        self.data_received(data[room:])  # type: ignore[arg-type]

    def _too_large_message(self) -> str:
        return f"request line and headers are larger than {self.max_head_bytes} bytes"

    # Parser callbacks

    def on_message_begin(self) -> None:
        self.head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.reading_head = self.head_begun = False
        self.heads_completed += 1
        self._stop_head_clock()
        self.upgrading = self.parser.should_upgrade() and self._should_upgrade()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head, self.head_bytes = True, 0
        if not self.upgrading and self.cycle is not None and self.cycle.response_complete:
            # Answered before its body was read (a 413, a 401): uvicorn's keep-alive clock
            # started then, and the body's bytes stopped it, so start this one.
            self._start_head_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.head_begun and self.head_timer is None and self._idle():
            self._start_head_clock()  # a pipelined head had begun while this was answered

    # The head's clock

    def _idle(self) -> bool:
        """Still this connection's protocol, open, and answering (or refusing) no request."""
        if self.refused or self.transport.is_closing() or self.transport.get_protocol() is not self:
            return False
        return self.cycle is None or self.cycle.response_complete

    def _start_head_clock(self) -> None:
        self._stop_head_clock()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self._idle():
            return
        if not self.head_begun:
            # Nothing was asked, so nothing is answered: a browser may hold a spare socket
            # open, and an answer to a request it has not sent yet would confuse it.
            self.transport.close()
            return
        seconds = f"{self.head_timeout:g}"
        message = f"request line and headers not received whole within {seconds} s"
        self._log_refusal("408", message)
        self._refuse(408, "request_timeout", message)

    # Refusals

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_request", "malformed HTTP request")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer `{"error": …}`, read and drop what follows, and close."""
        if self.refused or self.transport.is_closing():
            return
        self.refused = True
        self._stop_head_clock()
        self.flow.resume_reading()
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer is under way and the refusal can't be written into it.
            if self.reading_head:
                self.cycle.keep_alive = False  # its request is whole: let it be the last
            else:
                self.transport.close()  # its own body is broken, as uvicorn does
            return
        self.transport.write(self._error_response(status, code, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _log_refusal(self, status: str, message: str) -> None:
        client = "{}:{} - ".format(*self.client) if self.client else ""
        self.logger.info("%s%s %s", client, status, message)

    def _error_response(self, status: int, code: str, message: str) -> bytes:
        body = orjson.dumps(error_body(code, message))
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        return b"".join(content)
