"""The two ways a teaser leaves: pushed to a live socket, or handed to a poll."""

from __future__ import annotations

import logging

from realtime.hub import Hub
from realtime.metrics import Metrics
from realtime.presence import PresenceRecorder
from realtime.store import TeaserStore
from realtime.teaser import Draft, Teaser

logger = logging.getLogger("teaser.delivery")


class Delivery:
    def __init__(
        self, store: TeaserStore, hub: Hub, presence: PresenceRecorder, metrics: Metrics
    ) -> None:
        self.store = store
        self.hub = hub
        self.presence = presence
        self.metrics = metrics

    async def send(self, site_id: str, drafts: list[Draft]) -> list[Teaser]:
        """Store first (the source of truth), then wake whoever holds each session."""
        teasers = await self.store.send(site_id, drafts)
        self.metrics.sent.inc(len(teasers))
        for session_id in dict.fromkeys(t.session_id for t in teasers):
            await self.hub.notify(site_id, session_id)
        return teasers

    async def poll(self, site_id: str, session_id: str, path: str | None = None) -> list[Teaser]:
        self.presence.seen(site_id, session_id, "poll", poll=True)
        self.metrics.polls.inc()
        teasers = await self.store.consume_pending(site_id, session_id, path)
        for teaser in teasers:
            self.hub.record_latency(teaser)
        self.metrics.delivered_poll.inc(len(teasers))
        return teasers
