"""What a teaser is, and the rules every new one must follow."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from enum import StrEnum

from realtime.platform.clock import iso_time
from realtime.platform.errors import InvalidInput
from realtime.platform.ids import FORBIDDEN_CHARACTERS

MIN_EXPIRES_IN_MS = 1_000
MAX_EXPIRES_IN_MS = 86_400_000
DEFAULT_EXPIRES_IN_MS = 300_000
ID_RANDOM_BYTES = 12  # 16 base64 characters, no padding


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


def check_message(value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput("message", "must be a string")
    text = value.strip()
    if not text:
        raise InvalidInput("message", "must not be empty")
    if len(text) > max_length:
        raise InvalidInput("message", f"must be at most {max_length} characters, got {len(text)}")
    if FORBIDDEN_CHARACTERS.search(text):
        raise InvalidInput("message", "must not contain control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("message", "must be valid Unicode (no lone surrogates)") from None
    return text


def check_priority(value: object) -> Priority:
    if value not in (Priority.MANUAL.value, Priority.AUTO.value):
        raise InvalidInput("priority", "must be 'manual' or 'auto'")
    return Priority(str(value))


def check_expires_in(value: object) -> int:
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral:
        raise InvalidInput("expiresIn", "must be an integer number of milliseconds")
    assert isinstance(value, (int, float))
    if not MIN_EXPIRES_IN_MS <= value <= MAX_EXPIRES_IN_MS:
        raise InvalidInput(
            "expiresIn", f"must be between {MIN_EXPIRES_IN_MS} and {MAX_EXPIRES_IN_MS} ms"
        )
    return int(value)


PATH_PATTERN = re.compile(r"/[^\s*?#]{0,198}\*?")


def check_path_pattern(value: object, field: str = "onlyOnPath") -> str | None:
    """A page path, exact ("/cart") or a prefix ending in "*" ("/chairs*")."""
    if value is None:
        return None
    if not isinstance(value, str) or not PATH_PATTERN.fullmatch(value):
        raise InvalidInput(field, "must be a path like /cart or a prefix like /chairs*")
    return value


def check_current_path(value: object, field: str = "path") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 512:
        raise InvalidInput(field, "must be the page path, starting with '/'")
    return value


def client_fields(teaser: Teaser) -> dict[str, object]:
    """A teaser as a visitor's browser gets it, by socket frame or poll answer alike."""
    return {
        "id": teaser.id,
        "seq": teaser.session_seq,
        "message": teaser.message,
        "priority": teaser.priority.value,
        "createdAt": iso_time(teaser.created_at),
        "expiresAt": iso_time(teaser.expires_at),
    }
