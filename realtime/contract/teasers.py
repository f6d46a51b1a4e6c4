"""Sending, polling and opening a session: the bodies in and the answers out."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from realtime.contract.fields import (
    ExpiresIn,
    MessageText,
    PagePath,
    PathPattern,
    PollWait,
    Position,
    SessionId,
    SessionToken,
    SiteId,
)
from realtime.delivery import DEFAULT_EXPIRES_IN_MS, ClientTeaser, Draft, Priority, Status, Teaser
from realtime.platform import InvalidInput, IsoTime, iso_time

MAX_BULK_MESSAGES = 1000
PriorityName = Literal["manual", "auto"]


class Transport(StrEnum):
    WEBSOCKET = "websocket"
    POLL = "poll"


class SendRequest(Struct, rename="camel"):
    """One teaser for one visitor's session."""

    session_id: SessionId
    message: MessageText
    priority: PriorityName = "manual"
    expires_in: ExpiresIn = DEFAULT_EXPIRES_IN_MS
    only_on_path: PathPattern | None = None

    def draft(self, max_length: int) -> Draft:
        """The check a type can't say: the configured length. It counts the text as sent,
        as the published schema's maxLength does (what is stored is that, trimmed)."""
        if len(self.message) > max_length:
            raise InvalidInput(
                "message", f"must be at most {max_length} characters, got {len(self.message)}"
            )
        message = self.message.strip()
        return Draft(
            session_id=self.session_id,
            message=message,
            priority=Priority(self.priority),
            expires_in_ms=int(self.expires_in),
            only_on_path=self.only_on_path,
        )


BulkSendRequest = Annotated[
    list[SendRequest],
    Meta(
        min_length=1,
        max_length=MAX_BULK_MESSAGES,
        description="All or nothing: one bad message refuses the whole send.",
        extra={"refusal": f"a bulk send holds 1 to {MAX_BULK_MESSAGES} messages"},
    ),
]


class DashboardSendRequest(Struct, rename="camel"):
    """📨 Send Custom Teaser from the dashboard: always manual."""

    session_id: SessionId
    message: MessageText
    expires_in: ExpiresIn = DEFAULT_EXPIRES_IN_MS
    only_on_path: PathPattern | None = None

    def draft(self, max_length: int) -> Draft:
        as_sent = SendRequest(
            session_id=self.session_id,
            message=self.message,
            expires_in=self.expires_in,
            only_on_path=self.only_on_path,
        )
        return as_sent.draft(max_length)


def drafts_from(sent: SendRequest | list[SendRequest], max_length: int) -> tuple[list[Draft], bool]:
    """The drafts of a single or a bulk send, and whether it was bulk; a bulk send's
    refusal names the message by its place: `[5].message: …`."""
    if not isinstance(sent, list):
        return [sent.draft(max_length)], False
    drafts = []
    for place, each in enumerate(sent):
        try:
            drafts.append(each.draft(max_length))
        except InvalidInput as exc:
            raise InvalidInput(f"[{place}].{exc.field}", exc.detail) from None
    return drafts, True


class SentTeaser(Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A teaser as its sender sees it."""

    id: str
    session_id: str
    site_id: str
    message: str
    priority: Priority
    created_at: IsoTime
    expires_at: IsoTime
    seq: int | None
    status: Status
    only_on_path: str | None = None

    @classmethod
    def of(cls, teaser: Teaser, now: int) -> SentTeaser:
        return cls(**_sent(teaser, now))


class TeaserState(SentTeaser, kw_only=True):
    """A teaser and what became of it: delivered by which transport, and when."""

    delivered_via: Transport | None
    delivered_at: IsoTime | None

    @classmethod
    def of(cls, teaser: Teaser, now: int) -> TeaserState:
        consumed = teaser.consumed_at
        return cls(
            **_sent(teaser, now),
            delivered_via=None if teaser.delivered_via is None else Transport(teaser.delivered_via),
            delivered_at=None if consumed is None else iso_time(consumed),
        )


def _sent(teaser: Teaser, now: int) -> Any:
    return {
        "id": teaser.id,
        "session_id": teaser.session_id,
        "site_id": teaser.site_id,
        "message": teaser.message,
        "priority": teaser.priority,
        "created_at": iso_time(teaser.created_at),
        "expires_at": iso_time(teaser.expires_at),
        "seq": teaser.session_seq,
        "status": teaser.status(now),
        "only_on_path": teaser.only_on_path or None,
    }


class BulkSent(Struct):
    messages: list[SentTeaser]


class WidgetRequest(Struct, rename="camel"):
    """Who a poll or a session socket speaks for, where the visitor is, what it saw last."""

    site_id: SiteId
    session_id: SessionId
    path: PagePath | None = None
    since: Position | None = None
    token: SessionToken | None = None


class PollRequest(WidgetRequest, rename="camel"):
    """A poll: who it speaks for, and how long it may be held (long-polling)."""

    wait: PollWait = 0


class PollAnswer(Struct, rename="camel", omit_defaults=True):
    messages: list[ClientTeaser]
    poll_interval: Annotated[
        int, Meta(description="Milliseconds until the next poll, unless `wait` is there.")
    ]
    recovered: Annotated[
        bool | None,
        Meta(
            description="With since: whether that position was known, so that what came "
            "after it is sent again; false means start over (it was too old or unknown)."
        ),
    ] = None
    wait: Annotated[
        int,
        Meta(
            description="With `wait` asked: the milliseconds this poll could be held. Poll "
            "again at once. Absent (or 0): it was answered as a plain poll (long-polling off "
            "or full), so poll again after `pollInterval`."
        ),
    ] = 0


class SessionRequest(Struct, rename="camel"):
    site_id: SiteId


class SessionOpened(Struct, rename="camel"):
    session_id: str
    token: str
    poll_interval: int


# PUT /api/teaser-messages takes one message, or an array of them.
SendBody = SendRequest | BulkSendRequest
