"""The two ways a teaser leaves: pushed to a live socket, or handed to a poll."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from realtime.delivery.hub import Hub, teaser_activity
from realtime.delivery.pending import PendingSessions
from realtime.delivery.presence import PresenceRecorder
from realtime.delivery.store import DuplicateSend, IdempotencyKey, TeaserStore
from realtime.delivery.teaser import Draft, Teaser
from realtime.delivery.waiting import HeldPoll, HeldPolls, Woken
from realtime.fanout.activity import ActivityFeed
from realtime.platform.metrics import Metrics, PollOutcome


@dataclass(frozen=True)
class Sent:
    teasers: list[Teaser]
    replayed: bool = False


@dataclass(frozen=True)
class Polled:
    teasers: list[Teaser]
    # None: the client gave no position; False: an unknown one, so nothing was replayed.
    recovered: bool | None = None
    # Milliseconds this poll could be held for (0: answered at once, as a plain poll).
    wait_ms: int = 0


class Delivery:
    def __init__(
        self,
        store: TeaserStore,
        hub: Hub,
        presence: PresenceRecorder,
        metrics: Metrics,
        activity: ActivityFeed,
        pending: PendingSessions,
        held: HeldPolls,
        recheck_seconds: float,
    ) -> None:
        self.pending = pending
        self.held = held
        self.recheck_seconds = recheck_seconds
        self.store = store
        self.hub = hub
        self.presence = presence
        self.metrics = metrics
        self.activity = activity

    async def send(self, site_id: str, drafts: list[Draft]) -> list[Teaser]:
        return (await self.send_once(site_id, drafts)).teasers

    async def send_once(
        self, site_id: str, drafts: list[Draft], idempotency: IdempotencyKey | None = None
    ) -> Sent:
        """Store first (the source of truth), then wake whoever holds each session. A retry
        with the same idempotency key gets the first send's messages, and sends nothing."""
        if idempotency is not None:
            earlier = await self.store.previous_send(site_id, idempotency)
            if earlier is not None:
                return Sent(earlier, replayed=True)
        # A session with a socket here gets its messages stored already leased to that
        # socket and handed over directly: no claim, and no trip through the broker. One
        # whose socket the directory places on another worker gets them leased to that
        # socket, and handed over whole through the broker: no claim there either.
        counts = Counter(d.session_id for d in drafts if d.only_on_path is None)
        sockets = self.hub.reserve(site_id, counts)
        elsewhere = await self.hub.locate(site_id, [s for s in counts if s not in sockets])
        try:
            teasers = await self.store.send(site_id, drafts, idempotency, {**elsewhere, **sockets})
        except BaseException as exc:
            for socket in sockets.values():
                await self.hub.hand_over(socket, [])  # nothing was stored for it
            if not isinstance(exc, DuplicateSend):
                raise
            assert idempotency is not None
            return Sent(await self.store.previous_send(site_id, idempotency) or [], True)
        self.metrics.sent.inc(site_id, len(teasers))
        for teaser in teasers:
            self.activity.announce(site_id, "teaser_sent", **teaser_activity(teaser))
        handed: dict[str, list[Teaser]] = {}
        to_wake: set[str] = set()
        for teaser in teasers:
            if teaser.leased_to is not None:
                handed.setdefault(teaser.leased_to, []).append(teaser)
            else:
                to_wake.add(teaser.session_id)
        for socket in sockets.values():
            await self.hub.hand_over(socket, handed.get(socket.holder, []))
        markers = [(site_id, t.session_id, t.expires_at) for t in teasers]
        crossing = [
            self.hub.hand_across(site_id, session_id, socket.holder, handed[socket.holder])
            for session_id, socket in elsewhere.items()
            if socket.holder in handed
        ]
        if not to_wake and not crossing:
            await self.pending.mark(markers)
            return Sent(teasers)
        # All only speed delivery up (the store has it already), so they run side by side.
        await asyncio.gather(
            self.pending.mark(markers),
            *crossing,
            *(self.hub.notify(site_id, session_id) for session_id in to_wake),
        )
        return Sent(teasers)

    async def poll(
        self,
        site_id: str,
        session_id: str,
        path: str | None = None,
        since: int | None = None,
        wait: float = 0.0,
        on_hold: Callable[[Callable[[], None]], None] | None = None,
    ) -> Polled:
        """What waits for the session, consumed. With `wait` (seconds), a poll that finds
        nothing is held until the session gets something, or the wait is over: long-polling,
        at no database read while it waits. `on_hold` is given what ends the hold (the
        client went away). A poll of the session, held or not, ends the one held before."""
        if wait > 0:
            held = self.held.hold(site_id, session_id)
            if held is not None and on_hold is not None:
                on_hold(held.end)
        else:
            held = None
            self.held.end(site_id, session_id)
        try:
            return await self._poll(site_id, session_id, path, since, held, wait)
        finally:
            if held is not None:
                self.held.release(site_id, session_id, held)

    async def _poll(
        self,
        site_id: str,
        session_id: str,
        path: str | None,
        since: int | None,
        held: HeldPoll | None,
        wait: float,
    ) -> Polled:
        self.presence.seen(site_id, session_id, "poll", poll=True)
        granted = round(wait * 1000) if held is not None else 0
        read_store = since is not None or await self.pending.may_have(site_id, session_id)
        teasers: list[Teaser] = []
        recovered = None
        if read_store:
            teasers, recovered = await self._claim(site_id, session_id, path, since)
        if not teasers and held is not None:
            deadline = time.monotonic() + wait
            while not teasers:
                # Woken by the pending index. While it can't be trusted (Redis away), a send
                # on another worker might wake nobody: then look in the store each interval.
                woken = await held.woken(deadline, self.recheck_seconds)
                if woken in (Woken.DEADLINE, Woken.ENDED):
                    break
                if woken is Woken.RECHECK and self.pending.trusted:
                    continue  # nothing was missed: a marker would have woken this poll
                read_store = True
                teasers, _ = await self._claim(site_id, session_id, path, since)
            self.presence.seen(site_id, session_id, "poll")
        outcome: PollOutcome = "delivered" if teasers else "empty" if read_store else "skipped"
        self.metrics.polls.inc(outcome)
        return Polled(teasers, None if since is None else recovered is not None, granted)

    async def _claim(
        self, site_id: str, session_id: str, path: str | None, since: int | None
    ) -> tuple[list[Teaser], list[Teaser] | None]:
        """Consume what waits (and, with `since`, recover what was handed out after it):
        in session order, without what the client has already seen."""
        recovered = None
        if since is not None:
            recovered = await self.store.recover(site_id, session_id, since, path)
        teasers = await self.store.consume_pending(site_id, session_id, path)
        now = self.store.clock()
        for teaser in teasers:
            self.metrics.latency_poll.observe(max(0, now - teaser.created_at) / 1000)
            self.activity.announce(
                site_id, "teaser_delivered", via="poll", **teaser_activity(teaser)
            )
        self.metrics.delivered_poll.inc(len(teasers))
        # Whatever the client already saw (up to `since`) is consumed without being resent.
        fresh = [t for t in teasers if since is None or (t.session_seq or 0) > since]
        merged = {t.id: t for t in [*(recovered or []), *fresh]}
        ordered = sorted(merged.values(), key=lambda t: (t.session_seq or 0, t.seq))
        return ordered, recovered
