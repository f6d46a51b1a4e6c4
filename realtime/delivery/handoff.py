"""A send's messages for a socket on another worker, carried whole on the session's channel:
stored already leased to that socket, so its worker writes the frames without a claim.

A bare wake (an empty message) still means "look in the store"; a hand-off is JSON."""

from __future__ import annotations

from contextlib import suppress

import orjson

from realtime.delivery.teaser import Priority, Teaser


def handoff_message(holder: str, teasers: list[Teaser]) -> str:
    return orjson.dumps(
        {
            "holder": holder,
            "teasers": [
                [
                    t.id,
                    t.seq,
                    t.session_seq,
                    t.message,
                    t.priority.value,
                    t.created_at,
                    t.expires_at,
                ]
                for t in teasers
            ],
        }
    ).decode()


def handed_off(site_id: str, session_id: str, message: str) -> tuple[str, list[Teaser]] | None:
    """The holder a hand-off is for, and its messages; None for a bare wake (or anything
    that is not a hand-off: the socket then looks in the store, which is always right)."""
    if not message.startswith("{"):
        return None
    with suppress(orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        body = orjson.loads(message)
        teasers = [
            Teaser(
                id=str(id_),
                site_id=site_id,
                session_id=session_id,
                message=str(text),
                priority=Priority(priority),
                created_at=int(created_at),
                expires_at=int(expires_at),
                seq=int(seq),
                session_seq=None if session_seq is None else int(session_seq),
                leased_to=str(body["holder"]),
            )
            for id_, seq, session_seq, text, priority, created_at, expires_at in body["teasers"]
        ]
        return str(body["holder"]), teasers
    return None
