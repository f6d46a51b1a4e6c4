"""The session socket's frames, both ways, and a teaser as a visitor's browser gets it
(the same in a socket frame and in a poll's answer)."""

from __future__ import annotations

from typing import Annotated, Self

import msgspec
from msgspec import Meta, Struct

from realtime.delivery.teaser import Priority, Teaser
from realtime.platform.clock import IsoTime, iso_time


class ClientTeaser(Struct, rename="camel"):
    """A teaser as the visitor's browser gets it."""

    id: str
    seq: int | None
    message: str
    priority: Priority
    created_at: IsoTime
    expires_at: IsoTime

    @classmethod
    def of(cls, teaser: Teaser) -> Self:
        return cls(
            teaser.id,
            teaser.session_seq,
            teaser.message,
            teaser.priority,
            iso_time(teaser.created_at),
            iso_time(teaser.expires_at),
        )


class TeaserFrame(ClientTeaser, tag_field="type", tag="teaser"):
    """Server → client: show this teaser, then ack it."""


class PingFrame(Struct, tag_field="type", tag="ping"):
    """Server → client: are you there? Answer with a pong."""


class AckFrame(Struct, tag_field="type", tag="ack"):
    """Client → server: this teaser is shown; do not send it again."""

    id: Annotated[str, Meta(max_length=64)]


class PongFrame(Struct, tag_field="type", tag="pong"):
    """Client → server: still here (any frame proves it, a pong says only that)."""


ServerFrame = TeaserFrame | PingFrame
ClientFrame = AckFrame | PongFrame
_encoder = msgspec.json.Encoder()
_client_frames = msgspec.json.Decoder(ClientFrame)
PING_FRAME = _encoder.encode(PingFrame()).decode()


def teaser_frame(teaser: Teaser) -> str:
    return _encoder.encode(TeaserFrame.of(teaser)).decode()


def client_frame(raw: str | bytes) -> ClientFrame | None:
    """What a client said, or None for anything else (ignored, not fatal)."""
    try:
        return _client_frames.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
