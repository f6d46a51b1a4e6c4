"""What operators read: the live feed and cards, conversions, and a session's journey."""

from realtime.insight.analytics import MAX_PAGE, Analytics, Cursor, View, parse_view, refs_of
from realtime.insight.conversions import Conversions
from realtime.insight.journey import Journeys

__all__ = [
    "MAX_PAGE",
    "Analytics",
    "Conversions",
    "Cursor",
    "Journeys",
    "View",
    "parse_view",
    "refs_of",
]
