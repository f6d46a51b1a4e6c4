"""Fan-out between workers: the broker (in-process or Redis), its channels, live activity."""

from realtime.fanout.activity import ActivityBatch, ActivityFeed
from realtime.fanout.backends.base import RESYNC, Event
from realtime.fanout.broker import Broker
from realtime.fanout.channels import session_channel, sign_out_channel, site_activity_channel

__all__ = [
    "RESYNC",
    "ActivityBatch",
    "ActivityFeed",
    "Broker",
    "Event",
    "session_channel",
    "sign_out_channel",
    "site_activity_channel",
]
