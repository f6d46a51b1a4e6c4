"""Request bodies in, response bodies out: the wire names live here and nowhere else."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from realtime.delivery import (
    DEFAULT_EXPIRES_IN_MS,
    Draft,
    IdempotencyKey,
    Priority,
    Teaser,
    check_current_path,
    check_expires_in,
    check_message,
    check_path_pattern,
    check_priority,
)
from realtime.platform import InvalidInput, TeaserError, check_session_id, check_site_id, iso_time

MAX_BODY_BYTES = 16 * 1024
# Bulk sends are authenticated and may carry up to MAX_BULK_MESSAGES full-length messages.
MAX_SEND_BODY_BYTES = 1024 * 1024
MAX_BULK_MESSAGES = 1000


class MalformedJSON(TeaserError):
    code = "malformed_json"


def parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedJSON("request body is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None


def drafts_from_send(payload: Any, max_length: int) -> tuple[list[Draft], bool]:
    """A single message object, or a JSON array of them (all-or-nothing). Returns (drafts, bulk)."""
    if isinstance(payload, list):
        if not 1 <= len(payload) <= MAX_BULK_MESSAGES:
            raise InvalidInput("body", f"a bulk send holds 1 to {MAX_BULK_MESSAGES} messages")
        return [_draft(item, max_length, f"[{i}].") for i, item in enumerate(payload)], True
    return [_draft(payload, max_length, "")], False


def _draft(item: Any, max_length: int, prefix: str) -> Draft:
    if not isinstance(item, dict):
        raise InvalidInput(prefix.rstrip(".") or "body", "must be a JSON object")
    try:
        return Draft(
            session_id=check_session_id(item.get("sessionId")),
            message=check_message(item.get("message"), max_length),
            priority=check_priority(item.get("priority", Priority.MANUAL.value)),
            expires_in_ms=check_expires_in(item.get("expiresIn", DEFAULT_EXPIRES_IN_MS)),
            only_on_path=check_path_pattern(item.get("onlyOnPath")),
        )
    except InvalidInput as exc:
        if not prefix:
            raise
        raise InvalidInput(prefix + exc.field, exc.detail) from None


@dataclass(frozen=True)
class WidgetRequest:
    """Who a poll or a socket speaks for, where the visitor is, and what it saw last."""

    site_id: str
    session_id: str
    path: str | None = None
    since: int | None = None
    token: str | None = None


def widget_request(values: Mapping[str, Any]) -> WidgetRequest:
    """From a poll body or a socket's query string (where every value is a string)."""
    token = values.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > 200):
        raise InvalidInput("token", "must be the session token string")
    return WidgetRequest(
        site_id=check_site_id(values.get("siteId")),
        session_id=check_session_id(values.get("sessionId")),
        path=check_current_path(values.get("path")),
        since=_position(values.get("since")),
        token=token,
    )


def poll_request(payload: Any) -> WidgetRequest:
    if not isinstance(payload, dict):
        raise InvalidInput("body", "must be a JSON object")
    return widget_request(payload)


def _position(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise InvalidInput("since", "must be the last sequence number seen (an integer ≥ 0)")
    return value


def idempotency_key(header: str | None, body: bytes) -> IdempotencyKey | None:
    if header is None:
        return None
    if not 1 <= len(header) <= 200 or not header.isprintable():
        raise InvalidInput("Idempotency-Key", "must be 1-200 printable characters")
    return IdempotencyKey(header, hashlib.sha256(body).hexdigest())


def teaser_created(teaser: Teaser, now: int) -> dict[str, Any]:
    return {
        "id": teaser.id,
        "sessionId": teaser.session_id,
        "siteId": teaser.site_id,
        "message": teaser.message,
        "priority": teaser.priority.value,
        "createdAt": iso_time(teaser.created_at),
        "expiresAt": iso_time(teaser.expires_at),
        "seq": teaser.session_seq,
        "status": teaser.status(now).value,
    } | ({"onlyOnPath": teaser.only_on_path} if teaser.only_on_path else {})


def teaser_status(teaser: Teaser, now: int) -> dict[str, Any]:
    return teaser_created(teaser, now) | {
        "deliveredVia": teaser.delivered_via,
        "deliveredAt": None if teaser.consumed_at is None else iso_time(teaser.consumed_at),
    }
