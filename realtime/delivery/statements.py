"""The SQL of the hot paths, built once and reused with values bound at each execution:
building SQLAlchemy expressions per call cost more than the database's own work."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.dml import ReturningUpdate

from realtime.delivery.teaser import Priority, Teaser
from realtime.platform.database import UPSERT_BUILDERS
from realtime.platform.tables import of_session, session_counters
from realtime.platform.tables import teaser_messages as messages

COLUMNS = (
    messages.c.id,
    messages.c.site_id,
    messages.c.session_id,
    messages.c.message,
    messages.c.priority,
    messages.c.created_at,
    messages.c.expires_at,
    messages.c.seq,
    messages.c.consumed_at,
    messages.c.delivered_via,
    messages.c.only_on_path,
    messages.c.session_seq,
)


INSERT_RETURNING_SEQ = insert(messages).returning(messages.c.id, messages.c.seq)


# Built once: the statements and their compiled forms are reused for every batch.
def count_up(insert_for: Any) -> Any:
    counters = session_counters.c
    statement = insert_for(session_counters).values(
        site_id=bindparam("site_id"),
        session_id=bindparam("session_id"),
        last_seq=bindparam("count"),
    )
    return statement.on_conflict_do_update(
        index_elements=[counters.site_id, counters.session_id],
        set_={"last_seq": counters.last_seq + statement.excluded.last_seq},
    )


COUNT_UP = {dialect: count_up(insert_for) for dialect, insert_for in UPSERT_BUILDERS.items()}
COUNT_UP_RETURNING = {
    dialect: statement.returning(session_counters.c.last_seq)
    for dialect, statement in COUNT_UP.items()
}
# The columns a send writes, bound with a prefix: SQLAlchemy keeps a column's own name for
# the VALUES clause it would build.
SENT_COLUMNS = (
    "id",
    "site_id",
    "session_id",
    "message",
    "priority",
    "created_at",
    "expires_at",
    "only_on_path",
    "claimed_by",
    "claimed_until",
)


def send_alone() -> Any:
    """PostgreSQL: number and insert one message in one statement, so a lone send is one
    round trip in autocommit instead of BEGIN, upsert, insert and COMMIT."""
    counters = session_counters.c
    counter = (
        postgresql.insert(session_counters)
        .values(site_id=bindparam("p_site_id"), session_id=bindparam("p_session_id"), last_seq=1)
        .on_conflict_do_update(
            index_elements=[counters.site_id, counters.session_id],
            set_={"last_seq": counters.last_seq + 1},
        )
        .returning(counters.last_seq)
        .cte("counter")
    )
    row = select(
        *(bindparam(f"p_{name}", type_=messages.c[name].type) for name in SENT_COLUMNS),
        counter.c.last_seq,
    )
    return (
        insert(messages)
        .from_select([*SENT_COLUMNS, "session_seq"], row)
        .returning(messages.c.seq, messages.c.session_seq)
    )


SEND_ALONE = send_alone()
COUNTERS = select(session_counters.c.session_id, session_counters.c.last_seq).where(
    session_counters.c.site_id == bindparam("site"),
    session_counters.c.session_id.in_(bindparam("sessions", expanding=True)),
)
ACK_RETURNING = (
    update(messages)
    .where(
        messages.c.id.in_(bindparam("ids", expanding=True)),
        messages.c.claimed_by.in_(bindparam("holders", expanding=True)),
        messages.c.consumed_at.is_(None),
    )
    .values(consumed_at=bindparam("now"), delivered_via="websocket")
    .returning(messages.c.id, messages.c.site_id, messages.c.session_id)
)


# After a lost connection (PostgreSQL only), the statements that run again in its place.
# The first try may have committed with only its answer lost: each of these also finds
# what that try did, by what it wrote. A send's message ids were chosen before it ran:
STORED_NUMBERS = select(messages.c.id, messages.c.seq, messages.c.session_seq).where(
    messages.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(String)))
)
# An ack's consumed_at is the `now` it was given, which its second try is given too.
ACK_AGAIN = (
    update(messages)
    .where(
        messages.c.id.in_(bindparam("ids", expanding=True)),
        messages.c.claimed_by.in_(bindparam("holders", expanding=True)),
        or_(messages.c.consumed_at.is_(None), messages.c.consumed_at == bindparam("now")),
    )
    .values(consumed_at=bindparam("now"), delivered_via="websocket")
    .returning(messages.c.id, messages.c.site_id, messages.c.session_id)
)


# Built once per shape and reused, with the values bound at each execution: building
# SQLAlchemy expressions per call cost more than the database's own work.
@cache
def claim_statement(has_path: bool, limited: bool, again: bool = False) -> ReturningUpdate[Any]:
    """`again`: also what this holder already leased and nobody consumed (what a first
    try whose answer was lost leased to it; the socket skips what it knows it holds)."""
    deliverable = deliverable_now(has_path)
    if again:
        deliverable = or_(deliverable, leased_to_holder(has_path))
    if limited:
        # The outer condition stays: a row a racing poll took meanwhile is re-checked.
        oldest = select(messages.c.seq).where(deliverable).order_by(messages.c.seq)
        oldest = oldest.limit(bindparam("limit", type_=Integer))
        deliverable = and_(deliverable, messages.c.seq.in_(oldest.scalar_subquery()))
    return (
        update(messages)
        .where(deliverable)
        .values(claimed_by=bindparam("holder"), claimed_until=bindparam("until"))
        .returning(*COLUMNS)
    )


@cache
def consume_statement(has_path: bool, again: bool = False) -> ReturningUpdate[Any]:
    """`again`: also what a poll of this session consumed at this very `now` (a first try
    whose answer was lost; its second try is given the same `now`)."""
    deliverable = deliverable_now(has_path)
    if again:
        deliverable = or_(deliverable, polled_at_now(has_path))
    return (
        update(messages)
        .where(deliverable)
        .values(
            consumed_at=bindparam("now"), delivered_via="poll", claimed_by=None, claimed_until=None
        )
        .returning(*COLUMNS)
    )


def deliverable_now(has_path: bool) -> ColumnElement[bool]:
    now = bindparam("now", type_=BigInteger)
    return and_(
        messages.c.site_id == bindparam("site"),
        messages.c.session_id == bindparam("session"),
        messages.c.settled_at.is_(None),
        messages.c.consumed_at.is_(None),
        messages.c.expires_at > now,
        or_(messages.c.claimed_until.is_(None), messages.c.claimed_until <= now),
        shown_on(has_path),
    )


def leased_to_holder(has_path: bool) -> ColumnElement[bool]:
    return and_(
        messages.c.site_id == bindparam("site"),
        messages.c.session_id == bindparam("session"),
        messages.c.settled_at.is_(None),
        messages.c.consumed_at.is_(None),
        messages.c.expires_at > bindparam("now", type_=BigInteger),
        messages.c.claimed_by == bindparam("holder"),
        shown_on(has_path),
    )


def polled_at_now(has_path: bool) -> ColumnElement[bool]:
    return and_(
        messages.c.site_id == bindparam("site"),
        messages.c.session_id == bindparam("session"),
        messages.c.consumed_at == bindparam("now", type_=BigInteger),
        messages.c.delivered_via == "poll",
        shown_on(has_path),
    )


def has_messages(counters: Any) -> ColumnElement[bool]:
    return (
        select(messages.c.seq).where(of_session(counters.c.site_id, counters.c.session_id)).exists()
    )


# Rows a concurrent ack or claim holds are skipped (PostgreSQL), not waited for: they
# settle next time, and the settle can never deadlock with them.
SETTLE_BATCH = 10_000
_SETTLEABLE = (
    select(messages.c.seq)
    .where(
        messages.c.settled_at.is_(None),
        or_(messages.c.consumed_at.is_not(None), messages.c.expires_at <= bindparam("now")),
    )
    .limit(SETTLE_BATCH)
    .with_for_update(skip_locked=True)
)
SETTLE = (
    update(messages)
    .where(messages.c.seq.in_(_SETTLEABLE.scalar_subquery()))
    .values(settled_at=bindparam("now"))
)


def shown_on(has_path: bool) -> ColumnElement[bool]:
    """Messages bound to a page ("/cart", or a prefix "/chairs*") only go to a transport
    that reports a matching page (bound as "path"); unbound ones go anywhere."""
    pattern = messages.c.only_on_path
    if not has_path:
        return pattern.is_(None)
    path = bindparam("path", type_=String)
    stem = func.length(pattern) - 1
    prefix_match = and_(
        pattern.like("%*"), func.substr(path, 1, stem) == func.substr(pattern, 1, stem)
    )
    return or_(pattern.is_(None), pattern == path, prefix_match)


def teaser_from_mapping(data: Mapping[Any, Any]) -> Teaser:
    return Teaser(
        id=data["id"],
        site_id=data["site_id"],
        session_id=data["session_id"],
        message=data["message"],
        priority=Priority(data["priority"]),
        created_at=data["created_at"],
        expires_at=data["expires_at"],
        seq=data["seq"],
        consumed_at=data.get("consumed_at"),
        delivered_via=data.get("delivered_via"),
        only_on_path=data.get("only_on_path"),
        session_seq=data.get("session_seq"),
        leased_to=data.get("claimed_by"),
    )
