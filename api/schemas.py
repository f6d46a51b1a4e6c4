"""Request bodies in, response bodies out: the wire names live here and nowhere else."""

from __future__ import annotations

from typing import Any

import orjson

from realtime.clock import iso_time
from realtime.errors import InvalidInput, TeaserError
from realtime.teaser import (
    DEFAULT_EXPIRES_IN_MS,
    Draft,
    Priority,
    Teaser,
    check_current_path,
    check_expires_in,
    check_message,
    check_path_pattern,
    check_priority,
    check_session_id,
    check_site_id,
)

MAX_BODY_BYTES = 16 * 1024
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


def poll_request(payload: Any) -> tuple[str, str, str | None]:
    if not isinstance(payload, dict):
        raise InvalidInput("body", "must be a JSON object")
    return (
        check_site_id(payload.get("siteId")),
        check_session_id(payload.get("sessionId")),
        check_current_path(payload.get("path")),
    )


def teaser_created(teaser: Teaser, now: int) -> dict[str, Any]:
    return {
        "id": teaser.id,
        "sessionId": teaser.session_id,
        "siteId": teaser.site_id,
        "message": teaser.message,
        "priority": teaser.priority.value,
        "createdAt": iso_time(teaser.created_at),
        "expiresAt": iso_time(teaser.expires_at),
        "status": teaser.status(now).value,
    } | ({"onlyOnPath": teaser.only_on_path} if teaser.only_on_path else {})


def teaser_status(teaser: Teaser, now: int) -> dict[str, Any]:
    return teaser_created(teaser, now) | {
        "deliveredVia": teaser.delivered_via,
        "deliveredAt": None if teaser.consumed_at is None else iso_time(teaser.consumed_at),
    }


def polled(teaser: Teaser) -> dict[str, Any]:
    return {
        "id": teaser.id,
        "message": teaser.message,
        "priority": teaser.priority.value,
        "createdAt": iso_time(teaser.created_at),
        "expiresAt": iso_time(teaser.expires_at),
    }
