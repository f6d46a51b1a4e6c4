"""What a teaser is, and the rules every new one must follow."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from enum import StrEnum

MIN_EXPIRES_IN_MS = 1_000
MAX_EXPIRES_IN_MS = 86_400_000
DEFAULT_EXPIRES_IN_MS = 300_000
ID_RANDOM_BYTES = 12  # 16 base64 characters, no padding
# Where a teaser may wait to be shown: one page (/cart), or pages under a prefix (/chairs*).
PATH_PATTERN = re.compile(r"/[^\s*?#]{0,198}\*?")


class Priority(StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


class Status(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Draft:
    session_id: str
    message: str
    priority: Priority = Priority.MANUAL
    expires_in_ms: int = DEFAULT_EXPIRES_IN_MS
    only_on_path: str | None = None


@dataclass(frozen=True)
class Teaser:
    id: str
    site_id: str
    session_id: str
    message: str
    priority: Priority
    created_at: int
    expires_at: int
    seq: int
    consumed_at: int | None = None
    delivered_via: str | None = None
    only_on_path: str | None = None
    session_seq: int | None = None
    # Set by a send that stored it already leased to a socket on this worker.
    leased_to: str | None = None

    def status(self, now: int) -> Status:
        if self.consumed_at is not None:
            return Status.DELIVERED
        return Status.PENDING if now < self.expires_at else Status.EXPIRED


def new_teaser_ids(count: int, now_ms: int) -> list[str]:
    """`count` unguessable ids that sort by creation time: "tm_", the millisecond in
    12 hex digits, then 96 random bits. New ids land together at the end of the id index
    instead of on random pages of it, so a batch dirties a few pages, not one per message.
    The randomness comes from one read (a bulk send of 100 had spent more time in that
    syscall than in its INSERT)."""
    prefix = f"tm_{now_ms:012x}"
    entropy = os.urandom(ID_RANDOM_BYTES * count)
    return [
        prefix + base64.urlsafe_b64encode(entropy[i : i + ID_RANDOM_BYTES]).decode()
        for i in range(0, ID_RANDOM_BYTES * count, ID_RANDOM_BYTES)
    ]
