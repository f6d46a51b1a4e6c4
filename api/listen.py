"""`teaser listen`: a session's socket in a terminal, as the widget holds it.

It prints each teaser as it arrives and acks it, so the message is `delivered` and the
next poll doesn't return it again (a socket that never acks leaves its messages pending:
they go back to the queue when it closes). When the socket drops it reconnects with
`since` = the last seq it saw, so nothing sent meanwhile is missed or shown twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

# Close codes after which trying again can't help (see docs/api.md).
FINAL_CLOSE_CODES = {1008, 4401}
MIN_DELAY = 0.5
MAX_DELAY = 15.0


def default_server() -> str:
    """The server `script/server` starts: the same PORT, on loopback."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"


def socket_url(server: str, site_id: str, session_id: str, token: str | None, since: int) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query: dict[str, str | int] = {"sessionId": session_id, "siteId": site_id}
    if token:
        query["token"] = token
    if since:
        query["since"] = since
    return f"{scheme}://{parts.netloc}/api/teaser-ws?{urlencode(query)}"


class Listener:
    def __init__(
        self,
        server: str,
        site_id: str,
        session_id: str,
        token: str | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        self.server = server
        self.site_id = site_id
        self.session_id = session_id
        self.token = token
        self.out = out
        self.last_seq = 0
        self.seen: set[str] = set()

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def run(self) -> int:
        attempt = 0
        while True:
            url = socket_url(self.server, self.site_id, self.session_id, self.token, self.last_seq)
            try:
                async with connect(url, open_timeout=10, max_size=2**16) as socket:
                    if attempt == 0:
                        self.say(
                            f"Listening to session {self.session_id} of site {self.site_id} "
                            "(Ctrl+C to stop); each teaser is acked as it arrives."
                        )
                    else:
                        self.say(f"Reconnected (since seq {self.last_seq}).")
                    attempt = 0
                    await self.receive(socket)
            except InvalidStatus as refused:
                response = refused.response
                self.say(
                    f"The server refused the socket: {response.status_code} {_body(response.body)}"
                )
                return 1
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                if code in FINAL_CLOSE_CODES:
                    reason = closed.rcvd.reason if closed.rcvd else ""
                    self.say(f"The server closed the socket: {code} {reason}")
                    return 1
                self.say(f"The socket closed ({code}); reconnecting.")
            except OSError as unreachable:
                if attempt == 0 and self.last_seq == 0:
                    self.say(f"Can't reach {self.server}: {unreachable}")
                    return 1
                self.say(f"Can't reach {self.server}; trying again.")
            # Full jitter, as the widget backs off.
            await asyncio.sleep(
                MIN_DELAY + random.uniform(0, min(MAX_DELAY, MIN_DELAY * 2**attempt))
            )
            attempt += 1

    async def receive(self, socket: ClientConnection) -> None:
        async for raw in socket:
            frame: dict[str, Any] = json.loads(raw)
            kind = frame.get("type")
            if kind == "ping":
                await socket.send('{"type":"pong"}')
            elif kind == "teaser":
                await self.heard(socket, frame)

    async def heard(self, socket: ClientConnection, frame: dict[str, Any]) -> None:
        teaser_id = str(frame["id"])
        self.last_seq = max(self.last_seq, int(frame.get("seq") or 0))
        # A lost ack brings a message again: ack it again, print it once.
        if teaser_id not in self.seen:
            self.seen.add(teaser_id)
            at, priority = frame.get("createdAt"), frame.get("priority")
            self.say(f"{at} {teaser_id} [{priority}] {frame.get('message')}")
        await socket.send(json.dumps({"type": "ack", "id": teaser_id}))


def _body(body: bytes | bytearray | None) -> str:
    return (body or b"").decode(errors="replace").strip()


def listen(server: str, site_id: str, session_id: str, token: str | None = None) -> int:
    """Run until Ctrl+C (exit 0) or until the server refuses the session for good (1)."""
    try:
        return asyncio.run(Listener(server, site_id, session_id, token).run())
    except KeyboardInterrupt:
        return 0
