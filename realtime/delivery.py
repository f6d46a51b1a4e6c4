"""The two ways a teaser leaves: pushed to a live socket, or handed to a poll."""

from __future__ import annotations

from realtime.activity import ActivityFeed
from realtime.hub import Hub, teaser_activity
from realtime.metrics import Metrics
from realtime.presence import PresenceRecorder
from realtime.store import TeaserStore
from realtime.teaser import Draft, Teaser


class Delivery:
    def __init__(
        self,
        store: TeaserStore,
        hub: Hub,
        presence: PresenceRecorder,
        metrics: Metrics,
        activity: ActivityFeed,
    ) -> None:
        self.store = store
        self.hub = hub
        self.presence = presence
        self.metrics = metrics
        self.activity = activity

    async def send(self, site_id: str, drafts: list[Draft]) -> list[Teaser]:
        """Store first (the source of truth), then wake whoever holds each session."""
        teasers = await self.store.send(site_id, drafts)
        self.metrics.sent.inc(len(teasers))
        for teaser in teasers:
            self.activity.announce(site_id, "teaser_sent", **teaser_activity(teaser))
        for session_id in dict.fromkeys(t.session_id for t in teasers):
            await self.hub.notify(site_id, session_id)
        return teasers

    async def poll(self, site_id: str, session_id: str, path: str | None = None) -> list[Teaser]:
        self.presence.seen(site_id, session_id, "poll", poll=True)
        self.metrics.polls.inc()
        teasers = await self.store.consume_pending(site_id, session_id, path)
        for teaser in teasers:
            self.hub.record_latency(teaser)
            self.activity.announce(
                site_id, "teaser_delivered", via="poll", **teaser_activity(teaser)
            )
        self.metrics.delivered_poll.inc(len(teasers))
        return teasers
