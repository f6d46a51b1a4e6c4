"""Group commit: requests that arrive while a batch is being written wait and go together in
the next one, so a busy worker pays one transaction (and one trip to the database's thread)
per batch instead of one per request. An idle worker writes a lone request at once: no
timer, no added latency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

# One outcome per request, in order: its result, or the exception that request alone raises.
Flush = Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]]
# Told a request's outcome right after its batch is written (see GroupCommit.post).
Done = Callable[[Request, Result | BaseException], None]
Waiter = Done[Request, Result] | asyncio.Future[Result]

logger = logging.getLogger("teaser.batching")


class GroupCommit(Generic[Request, Result]):
    def __init__(
        self,
        flush: Flush[Request, Result],
        max_batch: int = 256,
        linger: float = 0.0,
        writers: int = 1,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        # For requests nobody waits on urgently: gather them this long before writing.
        self._linger = linger
        # One for a database with one connection (SQLite); a few where a pool writes in
        # parallel (PostgreSQL), so one slow transaction does not hold up every request.
        self._max_writers = writers
        self._waiting: list[tuple[Request, Waiter[Request, Result]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, request: Request) -> Result:
        # A cancelled caller cancels only its own future; the batch is written regardless.
        return await self.enqueue(request)

    async def drain(self) -> None:
        """Wait until everything queued so far is written (a stopping worker's last acks)."""
        while self._writers:
            await asyncio.wait(self._writers)

    def enqueue(self, request: Request) -> asyncio.Future[Result]:
        """Queue without waiting: for a caller that only needs to know the outcome later."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue(request, future)
        return future

    def post(self, request: Request, done: Done[Request, Result]) -> None:
        """Queue, and have `done` called with the outcome in the writer, as soon as the
        batch is written: no future and no callback scheduled per request, for the
        requests that come by the thousand (acks)."""
        self._queue(request, done)

    def _queue(self, request: Request, waiter: Waiter[Request, Result]) -> None:
        self._waiting.append((request, waiter))
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_all())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)

    async def _write_all(self) -> None:
        batch: list[tuple[Request, Waiter[Request, Result]]] = []
        try:
            if self._linger:
                await asyncio.sleep(self._linger)
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    outcomes = await self._flush([request for request, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (request, waiter), outcome in zip(batch, outcomes, strict=True):
                    _settle(request, waiter, outcome)
        except asyncio.CancelledError:
            # Stopped (shutdown) mid-batch: nobody may wait for ever.
            stopped = RuntimeError("group commit stopped")
            for request, waiter in [*batch, *self._waiting]:
                _settle(request, waiter, stopped)
            self._waiting.clear()
            raise
        finally:
            # At once, not in a done-callback: a request queued between this writer's last
            # look and that callback would otherwise find no writer free and wait forever.
            self._writers.discard(asyncio.current_task())


def _settle(
    request: Request,
    waiter: Waiter[Request, Result],
    outcome: Result | BaseException,
) -> None:
    if not isinstance(waiter, asyncio.Future):
        try:
            waiter(request, outcome)
        except Exception:
            logger.exception("a group commit callback failed")
    elif waiter.done():
        return
    elif isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
