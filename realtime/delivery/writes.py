"""The three statements every message costs: number it, insert it, ack it. One class per
kind of database, chosen by `writes_for(dialect)`.

Through SQLAlchemy, each execution cost more Python than SQLite's own work: a cache key,
parameters bound row by row, a Row object per returned row. On SQLite that Python runs in
the store's thread and holds the GIL the event loop needs. So there these go straight to
the driver, each as one multi-row statement; PostgreSQL keeps SQLAlchemy Core, whose
statements asyncpg prepares once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection

from realtime.delivery.statements import (
    ACK_AGAIN,
    ACK_RETURNING,
    COUNT_UP,
    COUNT_UP_RETURNING,
    COUNTERS,
    INSERT_RETURNING_SEQ,
    SENT_COLUMNS,
)

Item = TypeVar("Item")
SessionKey = tuple[str, str]  # (site_id, session_id)
# (site_id, session_id, how many new messages)
Count = tuple[str, str, int]
# (message id, site_id, session_id) of an acked message
Acked = tuple[str, str, str]

COUNTERS_PER_STATEMENT = 500  # far below any database's limit on parameters
INSERTED_COLUMNS = (*SENT_COLUMNS, "session_seq")
# SQLite allows 32,766 parameters per statement: 500 rows of 11 columns stay far below.
ROWS_PER_STATEMENT = 500


class MessageWrites(Protocol):
    def count_up(self, connection: Connection, counts: Sequence[Count]) -> dict[SessionKey, int]:
        """Add each count to its session's counter; the counters' new values."""
        ...

    def insert(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Insert the rows; each message id's `seq`."""
        ...

    def ack(
        self,
        connection: Connection,
        ids: Sequence[str],
        holders: Sequence[str],
        now: int,
        again: bool = False,
    ) -> set[Acked]:
        """Consume those of the messages that one of the holders leased and nobody
        consumed yet; the ones this consumed. `again`: the second try of an ack with the
        same `now` after a lost connection, which also counts what the first consumed."""
        ...


def writes_for(dialect: str) -> MessageWrites:
    return SQLiteWrites() if dialect == "sqlite" else CoreWrites()


class CoreWrites:
    def count_up(self, connection: Connection, counts: Sequence[Count]) -> dict[SessionKey, int]:
        parameters = [{"site_id": s, "session_id": ss, "count": n} for s, ss, n in counts]
        dialect = connection.dialect.name
        if len(parameters) == 1:  # the usual send: one statement, not two
            last = connection.execute(COUNT_UP_RETURNING[dialect], parameters[0]).scalar_one()
            return {(counts[0][0], counts[0][1]): int(last)}
        connection.execute(COUNT_UP[dialect], parameters)
        sites: dict[str, list[str]] = {}
        for site, session, _ in counts:
            sites.setdefault(site, []).append(session)
        lasts: dict[SessionKey, int] = {}
        for site, sessions in sites.items():
            for chunk in _chunks(sessions, COUNTERS_PER_STATEMENT):
                found = connection.execute(COUNTERS, {"site": site, "sessions": chunk})
                lasts.update(((site, session), int(last)) for session, last in found.all())
        return lasts

    def insert(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        # Matched by id, not by position: asking for rows back in parameter order makes
        # SQLAlchemy insert one row per statement on SQLite.
        returned = connection.execute(INSERT_RETURNING_SEQ, list(rows))
        return {row_id: seq for row_id, seq in returned.all()}

    def ack(
        self,
        connection: Connection,
        ids: Sequence[str],
        holders: Sequence[str],
        now: int,
        again: bool = False,
    ) -> set[Acked]:
        parameters = {"ids": list(ids), "holders": list(holders), "now": now}
        statement = ACK_AGAIN if again else ACK_RETURNING
        return {(a, b, c) for a, b, c in connection.execute(statement, parameters).all()}


class SQLiteWrites:
    def count_up(self, connection: Connection, counts: Sequence[Count]) -> dict[SessionKey, int]:
        driver = _driver(connection)
        lasts: dict[SessionKey, int] = {}
        for chunk in _chunks(counts, COUNTERS_PER_STATEMENT):
            parameters = [value for count in chunk for value in count]
            for site, session, last in driver.execute(count_up_sql(len(chunk)), parameters):
                lasts[(site, session)] = last
        return lasts

    def insert(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        driver = _driver(connection)
        seqs: dict[str, int] = {}
        for chunk in _chunks(rows, ROWS_PER_STATEMENT):
            parameters = [row[column] for row in chunk for column in INSERTED_COLUMNS]
            seqs.update(driver.execute(insert_sql(len(chunk)), parameters))
        return seqs

    def ack(
        self,
        connection: Connection,
        ids: Sequence[str],
        holders: Sequence[str],
        now: int,
        again: bool = False,
    ) -> set[Acked]:
        # A file has no connection to lose: never asked `again`.
        driver = _driver(connection)
        acked: set[Acked] = set()
        for chunk in _chunks(ids, ROWS_PER_STATEMENT):
            statement = ack_sql(len(chunk), len(holders))
            acked.update(driver.execute(statement, [now, *chunk, *holders]))
        return acked


def _chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _driver(connection: Connection) -> Any:
    return connection.connection.driver_connection


def _placeholders(count: int, width: int = 1) -> str:
    one = "?" if width == 1 else f"({', '.join('?' * width)})"
    return ", ".join([one] * count)


# The SQL text of each size is built per call (a join, cheaper than a cache lookup's
# bookkeeping would save); the driver's statement cache keeps the prepared forms.
def count_up_sql(sessions: int) -> str:
    return (
        "INSERT INTO session_counters (site_id, session_id, last_seq) "
        f"VALUES {_placeholders(sessions, 3)} "
        "ON CONFLICT (site_id, session_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq "
        "RETURNING site_id, session_id, last_seq"
    )


def insert_sql(rows: int) -> str:
    return (
        f"INSERT INTO teaser_messages ({', '.join(INSERTED_COLUMNS)}) "
        f"VALUES {_placeholders(rows, len(INSERTED_COLUMNS))} RETURNING id, seq"
    )


def ack_sql(ids: int, holders: int) -> str:
    return (
        "UPDATE teaser_messages SET consumed_at = ?, delivered_via = 'websocket' "
        f"WHERE id IN ({_placeholders(ids)}) AND claimed_by IN ({_placeholders(holders)}) "
        "AND consumed_at IS NULL RETURNING id, site_id, session_id"
    )
