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
        self, flush: Flush[Request, Result], max_batch: int = 256, linger: float = 0.0
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        # For requests nobody waits on urgently: gather them this long before writing.
        self._linger = linger
        self._waiting: list[tuple[Request, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        # A cancelled caller cancels only its own future; the batch is written regardless.
        return await self.enqueue(request)

    async def drain(self) -> None:
        """Wait until everything queued so far is written (a stopping worker's last acks)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    def enqueue(self, request: Request) -> asyncio.Future[Result]:
        """Queue without waiting: for a caller that only needs to know the outcome later."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
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
        finally:
            self._writer = None
            # Cancelled (shutdown) mid-batch: nobody may wait for ever.
            for _, future in [*batch, *self._waiting]:
                if not future.done():
                    future.set_exception(RuntimeError("group commit stopped"))
            self._waiting.clear()
