"""Group commit: requests that arrive while a batch is being written wait and go together in
the next one, so a busy worker pays one transaction (and one trip to the database's thread)
per batch instead of one per request. An idle worker writes a lone request at once: no
timer, no added latency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

# One outcome per request, in order: its result, or the exception that request alone raises.
Flush = Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]]


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
        self._waiting: list[tuple[Request, asyncio.Future[Result]]] = []
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
        self._waiting.append((request, future))
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_all())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return future

    async def _write_all(self) -> None:
        batch: list[tuple[Request, asyncio.Future[Result]]] = []
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
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        except asyncio.CancelledError:
            # Stopped (shutdown) mid-batch: nobody may wait for ever.
            for _, future in [*batch, *self._waiting]:
                if not future.done():
                    future.set_exception(RuntimeError("group commit stopped"))
            self._waiting.clear()
            raise
        finally:
            # At once, not in a done-callback: a request queued between this writer's last
            # look and that callback would otherwise find no writer free and wait forever.
            self._writers.discard(asyncio.current_task())
