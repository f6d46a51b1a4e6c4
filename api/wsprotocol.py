"""The WebSocket protocol Teaser serves with: uvicorn's websockets-sansio, minus the
handshake it keeps for the socket's whole life, minus an error logged for every upgrade
refused with an HTTP response, and minus a second heartbeat on the visitor's socket.

uvicorn holds the parsed upgrade request and the 101 response (their header objects and
the raw header lines) on every open socket, and never reads them after the handshake.
At thousands of idle sockets per worker those few kilobytes each are most of what a
socket costs, so once the handshake is done this protocol lets them go.
"""

from __future__ import annotations

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# What script/server, `teaser serve` and the Procfile pass to uvicorn as --ws.
LEAN_WEBSOCKETS = "api.wsprotocol:LeanWebSocketsProtocol"
SESSION_SOCKET_PATH = "/api/teaser-ws"


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    def start_keepalive(self) -> None:
        # The visitor's socket has a heartbeat of its own (realtime/delivery/connection.py:
        # a ping frame every 20 s, which the widget answers, and a close after 50 s unheard),
        # swept for all sockets at once by the hub. uvicorn's protocol ping on top cost each
        # idle socket two timers and a frame each way every 20 s. The dashboard's socket has
        # no heartbeat of its own, so it keeps uvicorn's.
        if self.scope.get("path") != SESSION_SOCKET_PATH:
            super().start_keepalive()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.initial_response is not None and self.close_sent:
            # The whole denial response (api/sockets.py refuse()) is written: the handshake
            # is over. uvicorn marks it done for an accept or a close but not for this, so
            # when the app returns it logs "ASGI callable returned without completing
            # handshake" at ERROR for what is a plain 4xx, already in its access line.
            self.handshake_complete = True
        if self.handshake_complete and "response" in self.__dict__:
            del self.request, self.response
