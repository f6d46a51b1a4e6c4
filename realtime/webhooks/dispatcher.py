"""Each worker's webhook loop: fan new events out, report expired teasers, lease the
endpoints with work due and send each one's batch in a task of its own, so that a slow
receiver holds up nobody but itself."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import suppress

import msgspec

from realtime.platform import StoreUnavailable, is_disconnect
from realtime.platform.clock import Clock, iso_time
from realtime.platform.outbox import Subscriptions, WebhookType
from realtime.webhooks.queue import DeliveryQueue, Lease, Pending, RetryPolicy
from realtime.webhooks.sender import Attempt, Sender
from realtime.webhooks.signing import headers

logger = logging.getLogger("teaser.webhooks")

# Endpoints one worker sends to at once; the others wait for a free place (or a worker).
PARALLEL_ENDPOINTS = 64
# Expired teasers are looked for once in this many rounds.
EXPIRED_SWEEP_ROUNDS = 10
# A worker that starts reports what expired this long before it (while it was down).
EXPIRED_LOOKBACK_MS = 3_600_000
# After the database fails a round, rounds pause: from this, doubling, up to the cap.
PAUSE_FIRST = 1.0
PAUSE_CAP = 30.0


class Dispatcher:
    def __init__(
        self,
        queue: DeliveryQueue,
        subscriptions: Subscriptions,
        sender: Sender,
        policy: RetryPolicy,
        *,
        clock: Clock,
        expiry_grace_ms: int,
        interval: float = 0.5,
    ) -> None:
        self.queue = queue
        self.subscriptions = subscriptions
        self.sender = sender
        self.policy = policy
        self.clock = clock
        # A socket may still ack a teaser within its lease after it expired.
        self.expiry_grace_ms = expiry_grace_ms
        self.sweep_interval = interval * EXPIRED_SWEEP_ROUNDS
        self._running: dict[int, asyncio.Task[None]] = {}
        self._expired_until = clock() - EXPIRED_LOOKBACK_MS
        self._next_sweep = 0.0
        self._paused_until = 0.0
        self._pause = 0.0

    async def tick(self) -> None:
        """One round; never raises. While the database is away, rounds pause longer and
        longer (up to PAUSE_CAP) instead of failing every TEASER_WEBHOOK_INTERVAL."""
        if time.monotonic() < self._paused_until:
            return
        try:
            if not await self.subscriptions.any():
                # No endpoint anywhere, so no event was written and nothing is due: no
                # round trips (three every interval, on every worker, had been the idle
                # server's busiest statements). The expiry window moves on unread.
                await self._sweep_expired()
                return
            while await self.queue.fan_out():
                pass
            await self._sweep_expired()
            await self._start_due()
        except Exception as exc:
            self._pause = min(PAUSE_CAP, self._pause * 2 or PAUSE_FIRST)
            self._paused_until = time.monotonic() + self._pause
            if isinstance(exc, StoreUnavailable) or is_disconnect(exc):
                logger.warning("webhooks wait %.0f s for the database: %s", self._pause, exc)
            else:
                logger.exception("webhooks round failed; the next in %.0f s", self._pause)
            return
        self._pause = 0.0

    async def _start_due(self) -> None:
        room = PARALLEL_ENDPOINTS - len(self._running)
        if room <= 0:
            return
        for lease in await self.queue.lease_due(set(self._running), room):
            task = asyncio.create_task(self._send_all(lease), name=f"webhook-{lease.endpoint_id}")
            self._running[lease.endpoint_id] = task
            task.add_done_callback(self._finished(lease.endpoint_id))

    def _finished(self, endpoint_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._running.pop(endpoint_id, None)

        return forget

    async def _send_all(self, lease: Lease) -> None:
        """Batch after batch while the endpoint has work due and is still ours."""
        try:
            while batch := await self.queue.batch(lease):
                results = await asyncio.gather(*(self._send_lane(lease, lane) for lane in batch))
                if not all(results):
                    return  # the lease is gone (disabled, removed, or expired and taken)
            await self.queue.release(lease)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The lease runs out by itself; whatever was not recorded is sent again then.
            logger.warning("webhook endpoint %s of %s: %s", lease.number, lease.site_id, exc)

    async def _send_lane(self, lease: Lease, lane: list[Pending]) -> bool:
        """One session's events in order; the first failure stops the lane. False once
        the endpoint is no longer ours to send to."""
        for pending in lane:
            attempt = await self._attempt(lease, pending)
            if attempt.delivered:
                recorded = await self.queue.delivered(lease, pending, attempt)
            else:
                recorded = await self.queue.failed(lease, pending, attempt, self.policy)
                if recorded.disabled:
                    logger.warning(
                        "webhook endpoint %s of %s disabled: %s",
                        lease.number,
                        lease.site_id,
                        recorded.disabled,
                    )
                    self.subscriptions.forget()
            if not recorded.leased:
                return False
            if not attempt.delivered:
                return True
        return True

    async def _attempt(self, lease: Lease, pending: Pending) -> Attempt:
        body = msgspec.json.encode(
            {
                "type": pending.type,
                "timestamp": iso_time(pending.event_created_at),
                "data": pending.payload,
            }
        )
        signed = headers(lease.secrets, pending.event_id, int(time.time()), body)
        return await self.sender.send(lease.url, signed, body)

    async def _sweep_expired(self) -> None:
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.sweep_interval
        until = self.clock() - self.expiry_grace_ms
        if until <= self._expired_until:
            return
        sites = await self.subscriptions.sites_wanting(WebhookType.EXPIRED)
        if sites:
            until = await self.queue.report_expired(sites, self._expired_until, until)
        self._expired_until = until

    async def purge(self) -> None:
        await self.queue.purge()

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        await self.sender.close()


def new_holder() -> str:
    """This worker's name on the leases it takes."""
    return f"wh_{uuid.uuid4().hex[:24]}"
