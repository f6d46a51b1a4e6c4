"""Where each session's socket is: a directory in Redis, one key per session naming the
socket that holds it (its holder id), so that a send on any worker can store the message
already leased to that socket, and the socket's worker writes the frame without a claim.

The directory is only ever a hint. An entry may be stale (the socket closed a moment ago,
its worker died, Redis restarted empty): the store's lease then runs out, or is given back
(realtime/delivery), and the message goes the way it would have without a directory. A
lookup that fails or takes long finds nothing, and the send goes that way at once.
"""

from __future__ import annotations

from collections.abc import Iterable


class SocketDirectory:
    """No directory: one worker, or no Redis. Every lookup finds nothing."""

    enabled = False

    async def enter(self, site_id: str, session_id: str, holder: str) -> bool:
        return False

    async def leave(self, site_id: str, session_id: str, holder: str) -> None:
        pass

    async def locate(self, site_id: str, session_ids: Iterable[str]) -> dict[str, str]:
        return {}

    async def close(self) -> None:
        pass
