"""Polls held open until their session may have something: long-polling, for visitors whose
network lets no WebSocket through.

A held poll waits on its session's key in memory and costs no database read while it
waits. It is woken by the pending index, whenever a marker for its session is set: by a
send on this worker, or by another worker's broadcast of one (realtime/delivery/pending.py),
so a send anywhere reaches a poll held anywhere without a subscription of its own. The store
stays the truth: a woken poll claims from it, as any poll does, and waits again if another
transport took the message first.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum


class Woken(Enum):
    MARKED = "marked"  # the session may have something: claim from the store
    RECHECK = "recheck"  # nothing heard for a while: claim anyway if the index can't be trusted
    DEADLINE = "deadline"  # the wait is over: answer with nothing
    ENDED = "ended"  # replaced by a newer poll of the session, or the worker is stopping


class HeldPoll:
    """One poll's place in the line: set when its session is marked, or when it must end."""

    __slots__ = ("_event", "ended")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.ended = False

    def wake(self) -> None:
        self._event.set()

    def end(self) -> None:
        self.ended = True
        self._event.set()

    async def woken(self, deadline: float, recheck: float) -> Woken:
        """Wait until marked, ended, `deadline` (time.monotonic()) or `recheck` seconds from
        now, whichever comes first."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 and not self._event.is_set():
            return Woken.DEADLINE
        timeout = min(remaining, recheck)
        try:
            # Not wait_for: on Python 3.11 it swallows a cancel that lands as the mark
            # arrives, and a cancelled poll would go on to claim for an answer never read.
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return Woken.DEADLINE if time.monotonic() >= deadline else Woken.RECHECK
        if self.ended:
            return Woken.ENDED
        self._event.clear()
        return Woken.MARKED


class HeldPolls:
    """This worker's held polls, at most one per session (a newer poll of a session ends the
    one before it: a tab that reloads, or a client that gave up on an answer, never holds two)
    and at most `capacity` in all; beyond that a poll is answered at once, as a plain one."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.stopping = False
        self._held: dict[tuple[str, str], HeldPoll] = {}

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, site_id: str, session_id: str) -> HeldPoll | None:
        """A place for a poll of this session, or None: the worker is stopping or full."""
        key = (site_id, session_id)
        earlier = self._held.pop(key, None)
        if earlier is not None:
            earlier.end()
        if self.stopping or len(self._held) >= self.capacity:
            return None
        held = self._held[key] = HeldPoll()
        return held

    def end(self, site_id: str, session_id: str) -> None:
        """A plain poll of the session came: the one held before it answers now."""
        held = self._held.pop((site_id, session_id), None)
        if held is not None:
            held.end()

    def release(self, site_id: str, session_id: str, held: HeldPoll) -> None:
        if self._held.get((site_id, session_id)) is held:
            del self._held[(site_id, session_id)]

    def marked(self, site_id: str, session_id: str) -> None:
        """The pending index set a marker for this session."""
        held = self._held.get((site_id, session_id))
        if held is not None:
            held.wake()

    def end_all(self) -> None:
        """The worker is stopping: every held poll answers now (its client polls again at
        once, and reaches another worker), and none is held from now on."""
        self.stopping = True
        for held in self._held.values():
            held.end()
        self._held.clear()
