from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from msgspec import Meta

Clock = Callable[[], int]
# How every time leaves this server: what iso_time writes.
IsoTime = Annotated[
    str, Meta(description="A UTC time, RFC 3339", extra_json_schema={"format": "date-time"})
]


def now_ms() -> int:
    """Wall-clock epoch milliseconds; injected wherever tests need to move time."""
    return time.time_ns() // 1_000_000


@lru_cache(maxsize=4096)
def iso_time(epoch_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the form every JS Date parses."""
    # Cached: a batch of messages shares its creation and expiry times, so each frame of a
    # bulk send would otherwise format the same two instants again.
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
