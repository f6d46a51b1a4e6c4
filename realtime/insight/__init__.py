"""What operators read: the live feed and cards, conversions, and a session's journey."""

from realtime.insight.analytics import (
    MAX_PAGE,
    PERIODS_MS,
    Analytics,
    Cursor,
    FeedFilter,
    View,
    refs_of,
)
from realtime.insight.conversions import Conversions
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
