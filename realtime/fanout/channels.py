"""Broker channel names, in one place so publishers and listeners agree."""

from __future__ import annotations


def session_channel(site_id: str, session_id: str) -> str:
    """Wakes the sockets of one visitor session: "look in the store now"."""
    return f"teaser:s:{site_id}:{session_id}"


def site_activity_channel(site_id: str) -> str:
    """Carries a site's events, sends and deliveries to its live dashboards."""
    return f"teaser:site:{site_id}:activity"


def sign_out_channel(operator_id: int) -> str:
    """Says "some sessions of this operator just ended": their open dashboards look again."""
    return f"teaser:operator:{operator_id}:signed-out"
