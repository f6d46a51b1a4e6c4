"""How the load client speaks to each server's sockets. One small class per protocol, the
same shape each: the URL to open, the handshake after the upgrade, and what to answer to a
frame (plus the teaser it carried, if any)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType

SITE_ID = "woodstock_outlet"


@dataclass(frozen=True)
class Reaction:
    replies: tuple[str, ...] = ()
    message: str | None = None  # the teaser's text, when the frame carried one


class Wire(Protocol):
    def url(self, base: str, session_id: str) -> str: ...

    async def handshake(self, ws: ClientWebSocketResponse, session_id: str) -> None: ...

    def react(self, text: str) -> Reaction: ...


class TeaserWire:
    """Teaser's own frames; the bare Starlette peer speaks the same."""

    def url(self, base: str, session_id: str) -> str:
        return f"{base}/api/teaser-ws?sessionId={quote(session_id)}&siteId={SITE_ID}"

    async def handshake(self, ws: ClientWebSocketResponse, session_id: str) -> None:
        return None

    def react(self, text: str) -> Reaction:
        frame = orjson.loads(text)
        kind = frame.get("type")
        if kind == "teaser":
            ack = orjson.dumps({"type": "ack", "id": frame["id"]}).decode()
            return Reaction((ack,), frame["message"])
        if kind == "ping":
            return Reaction(('{"type":"pong"}',))
        return Reaction()


class SocketIOWire:
    """Engine.IO 4 over a WebSocket from the first byte (no polling upgrade), Socket.IO 5
    packets on the default namespace: connect with auth, events as 42[...], ping "2".
    Without `acks` (the emit-and-forget peer) a message is counted and not answered; the
    pings still are: Engine.IO closes a socket whose pongs stop."""

    def __init__(self, acks: bool = True) -> None:
        self.acks = acks

    def url(self, base: str, session_id: str) -> str:
        return f"{base}/socket.io/?EIO=4&transport=websocket"

    async def handshake(self, ws: ClientWebSocketResponse, session_id: str) -> None:
        opened = await ws.receive(timeout=10)
        if opened.type != WSMsgType.TEXT or not opened.data.startswith("0"):
            raise RuntimeError(f"expected an Engine.IO open packet, got {opened.data!r}")
        await ws.send_str("40" + orjson.dumps({"sessionId": session_id}).decode())
        joined = await ws.receive(timeout=10)
        if joined.type != WSMsgType.TEXT or not joined.data.startswith("40"):
            raise RuntimeError(f"expected a Socket.IO connect answer, got {joined.data!r}")

    def react(self, text: str) -> Reaction:
        if text == "2":
            return Reaction(("3",))
        if text.startswith("42"):
            event, payload = orjson.loads(text[2:])[:2]
            if event == "teaser":
                if not self.acks:
                    return Reaction((), payload["message"])
                ack = "42" + orjson.dumps(["ack", payload["id"]]).decode()
                return Reaction((ack,), payload["message"])
        return Reaction()


WIRES: dict[str, Wire] = {
    "teaser": TeaserWire(),
    "starlette": TeaserWire(),
    "socketio": SocketIOWire(),
    "socketio-emit": SocketIOWire(acks=False),
}
