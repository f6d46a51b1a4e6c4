"""What both peers share with Teaser's send API: the same PUT body (one object or an array)
and the same 201 answer shape, so the load client drives all three the same way."""

from __future__ import annotations

import secrets
import time
from typing import Any

API_KEY = "woodstock_rt_key_2024"
SITE_ID = "woodstock_outlet"


def drafts(payload: Any) -> tuple[list[dict[str, Any]], bool] | None:
    """The messages of a send body and whether it was the bulk form; None if malformed."""
    bulk = isinstance(payload, list)
    items = payload if bulk else [payload]
    if not items or len(items) > 1000:
        return None
    for item in items:
        if not isinstance(item, dict):
            return None
        if not isinstance(item.get("sessionId"), str) or not isinstance(item.get("message"), str):
            return None
    return items, bulk


def stored(item: dict[str, Any]) -> dict[str, Any]:
    # No database here: an id and timestamps are all a sender gets back, as from Teaser.
    now = int(time.time() * 1000)
    return {
        "id": "tm_" + secrets.token_urlsafe(16),
        "sessionId": item["sessionId"],
        "siteId": SITE_ID,
        "message": item["message"],
        "priority": item.get("priority", "manual"),
        "createdAt": now,
        "expiresAt": now + int(item.get("expiresIn", 300_000)),
        "status": "pending",
    }
