"""What operators read: the live feed and cards, conversions, and a session's journey."""

from realtime.insight.analytics import MAX_PAGE, PERIODS_MS, Analytics, FeedFilter, View
from realtime.insight.conversions import Conversions
from realtime.insight.feed_items import Cursor, refs_of
from realtime.insight.journey import Journeys

__all__ = [
    "MAX_PAGE",
    "PERIODS_MS",
    "Analytics",
    "Conversions",
    "Cursor",
    "FeedFilter",
    "Journeys",
    "View",
    "refs_of",
]
