"""TeaserStore: the one place messages live, for both delivery paths.

Every hand-over is a conditional UPDATE ... RETURNING, so a poll and a socket racing for
the same message, even on two workers, can never both get it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from realtime.delivery.batching import Done, GroupCommit
from realtime.delivery.statements import (
    COLUMNS,
    SEND_ALONE,
    SENT_COLUMNS,
    SETTLE,
    STORED_NUMBERS,
    claim_statement,
    consume_statement,
    has_messages,
    shown_on,
    teaser_from_mapping,
)
from realtime.delivery.teaser import Draft, Teaser, new_teaser_ids
from realtime.delivery.transactions import BRIEF_ROWS, transactions_for
from realtime.delivery.writes import writes_for
from realtime.platform.clock import Clock, now_ms
from realtime.platform.errors import Conflict, InvalidInput, StoreUnavailable
from realtime.platform.outbox import Subscriptions, WebhookType, delivered, write_outbox
from realtime.platform.tables import idempotency_keys, of_session, session_counters
from realtime.platform.tables import teaser_messages as messages

# Concurrent transactions per kind of write on PostgreSQL (its pool holds 20 connections).
PARALLEL_WRITERS = 6
IDEMPOTENCY_WINDOW_MS = 86_400_000  # a retry a day later is a new send


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    request_hash: str


class DuplicateSend(Exception):
    """A concurrent send with the same idempotency key committed first."""


@dataclass(frozen=True)
class SendRequest:
    site_id: str
    drafts: Sequence[Draft]
    idempotency: IdempotencyKey | None
    holders: Mapping[str, LeasingSocket]


@dataclass(frozen=True)
class LeasingSocket:
    """A socket that takes a session's next `room` messages at once: they are stored
    already leased to it. On this worker, or on another (the socket directory named it)."""

    holder: str
    room: int


@dataclass(frozen=True)
class Claim:
    site_id: str
    session_id: str
    holder: str
    path: str | None
    limit: int | None
    # Also what is leased to this holder already: a message sent from another worker
    # straight to the socket may reach the store before its hand-over reaches the socket.
    mine: bool = False


@dataclass(frozen=True)
class Ack:
    site_id: str
    session_id: str
    message_id: str
    holder: str


def _number_rows(rows: list[dict[str, Any]], last: int) -> None:
    """Number one session's new rows so that the last of them gets `last`."""
    for offset, row in enumerate(rows):
        row["session_seq"] = last - len(rows) + 1 + offset


def _alone(request: SendRequest) -> bool:
    """A send that is one statement: one message, no idempotency key to record."""
    return len(request.drafts) == 1 and request.idempotency is None


def _send_failure(request: SendRequest, exc: Exception) -> Exception:
    if isinstance(exc, IntegrityError) and request.idempotency is not None:
        return DuplicateSend(request.idempotency.key)
    return exc


@dataclass(frozen=True)
class PurgeReport:
    expired: int
    deleted: int


class TeaserStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = now_ms,
        lease_ms: int = 30_000,
        ack_linger: float = 0.05,
        subscriptions: Subscriptions | None = None,
    ):
        self.engine = engine
        # Which sites' endpoints take teaser.delivered: their consumes and acks also write
        # the event to the webhook outbox, in the same transaction.
        self.subscriptions = subscriptions
        # Every statement of the store runs through here, as a function of a connection.
        self._database = transactions_for(engine)
        self.clock = clock
        self.lease_ms = lease_ms
        self._expired_counted_until = clock()
        self._doubted: set[str] = set()  # holders whose last claim failed
        self._writes = writes_for(engine.dialect.name)
        writers = 1 if engine.dialect.name == "sqlite" else PARALLEL_WRITERS
        # SQLite has no INSERT inside WITH, and there a transaction costs no round trip.
        self._one_statement_sends = engine.dialect.name == "postgresql"
        self._sends: GroupCommit[SendRequest, list[Teaser]] = GroupCommit(
            self._write_sends, writers=writers
        )
        self._claims: GroupCommit[Claim, list[Teaser]] = GroupCommit(
            self._write_claims, writers=writers
        )
        # An ack only records what the client already has, so it may wait a little: on
        # SQLite's single connection it then no longer holds up the next send, and under
        # load more acks share one statement.
        self._acks: GroupCommit[Ack, bool] = GroupCommit(self._write_acks, linger=ack_linger)

    async def drain(self) -> None:
        """Write what is still queued: acks linger before they are written."""
        for queue in (self._sends, self._claims, self._acks):
            await queue.drain()

    async def close(self) -> None:
        await self.drain()
        await self._database.close()

    async def send(
        self,
        site_id: str,
        drafts: Sequence[Draft],
        idempotency: IdempotencyKey | None = None,
        holders: Mapping[str, LeasingSocket] | None = None,
    ) -> list[Teaser]:
        """Store all drafts in one transaction, in order, numbering each session's messages
        1, 2, 3…; with an idempotency key, raise DuplicateSend if that key was used.
        `holders` names, per session, a socket that takes messages at once: as many as it
        has room for are stored already leased to it, so no claim follows."""
        return await self._sends.submit(SendRequest(site_id, drafts, idempotency, holders or {}))

    async def _write_sends(
        self, requests: Sequence[SendRequest]
    ) -> Sequence[list[Teaser] | BaseException]:
        now = self.clock()
        # The rows, their ids with them, are chosen once, before any try: a second try
        # after a lost connection writes, or finds already written, the very same ones.
        batches = [self._rows(request, now) for request in requests]
        if len(requests) == 1 and self._one_statement_sends and _alone(requests[0]):
            alone = partial(_write_alone, row=batches[0][0])
            try:
                return await self._unless_stored(
                    self._database.autocommit(
                        alone, partial(_stored_or, batches=batches, write=alone)
                    ),
                    batches,
                )
            except Exception as exc:
                return [_send_failure(requests[0], exc)]
        try:
            return await self._write_batches(requests, batches, now)
        except StoreUnavailable:
            raise  # for every request alike: trying each alone would only wait longer
        except Exception as exc:
            if len(requests) == 1:
                return [_send_failure(requests[0], exc)]
        # One bad request (a reused idempotency key) must not fail the others with it.
        outcomes: list[list[Teaser] | BaseException] = []
        for request, batch in zip(requests, batches, strict=True):
            try:
                outcomes.extend(await self._write_batches([request], [batch], now))
            except Exception as exc:
                outcomes.append(_send_failure(request, exc))
        return outcomes

    async def _write_batches(
        self, requests: Sequence[SendRequest], batches: list[list[dict[str, Any]]], now: int
    ) -> list[list[Teaser]]:
        together = partial(self._write_together, requests=requests, batches=batches, now=now)
        again = partial(_stored_or, batches=batches, write=together)
        brief = sum(map(len, batches)) <= BRIEF_ROWS
        return await self._unless_stored(
            self._database.write(together, again, brief=brief), batches
        )

    async def _unless_stored(
        self, writing: Awaitable[list[list[Teaser]]], batches: list[list[dict[str, Any]]]
    ) -> list[list[Teaser]]:
        """The write's answer; or, when its rows' ids are taken, the rows a first try wrote.
        A first try cut off with its connection can still commit after the second try
        looked for its ids (the server had the COMMIT, not yet the hang-up): the second
        try's insert then meets its own ids, and the send is done, not failed."""
        try:
            return await writing
        except IntegrityError:
            if self.engine.dialect.name != "postgresql":
                raise  # a file has no connection to lose, so no first try to find
            stored = await self._database.read(partial(_stored, batches=batches))
            if stored is None:
                raise
            return stored

    def _write_together(
        self,
        connection: Connection,
        requests: Sequence[SendRequest],
        batches: list[list[dict[str, Any]]],
        now: int,
    ) -> list[list[Teaser]]:
        rows = [row for batch in batches for row in batch]
        for request, batch in zip(requests, batches, strict=True):
            if request.idempotency is not None:
                self._remember(connection, request, batch, now)
        self._number(connection, rows)
        seqs = self._writes.insert(connection, rows)
        for row in rows:
            row["seq"] = seqs[row["id"]]
        return [[teaser_from_mapping(row) for row in batch] for batch in batches]

    def _rows(self, request: SendRequest, now: int) -> list[dict[str, Any]]:
        lease_until = now + self.lease_ms
        room = {session: socket.room for session, socket in request.holders.items()}
        rows = []
        for draft, message_id in zip(
            request.drafts, new_teaser_ids(len(request.drafts), now), strict=True
        ):
            holder = None
            # A message bound to a page waits for a claim that knows the socket's page.
            if room.get(draft.session_id, 0) > 0 and draft.only_on_path is None:
                holder = request.holders[draft.session_id].holder
                room[draft.session_id] -= 1
            rows.append(
                {
                    "id": message_id,
                    "site_id": request.site_id,
                    "session_id": draft.session_id,
                    "message": draft.message,
                    "priority": draft.priority.value,
                    "created_at": now,
                    "expires_at": now + draft.expires_in_ms,
                    "only_on_path": draft.only_on_path,
                    "claimed_by": holder,
                    "claimed_until": None if holder is None else lease_until,
                }
            )
        return rows

    async def previous_send(self, site_id: str, idempotency: IdempotencyKey) -> list[Teaser] | None:
        """The messages an earlier send with this key created; None if the key is new."""
        keys = idempotency_keys.c

        def find(connection: Connection) -> list[Teaser] | None:
            row = connection.execute(
                select(keys.request_hash, keys.message_ids).where(
                    keys.site_id == site_id, keys.key == idempotency.key
                )
            ).first()
            if row is None:
                return None
            if row.request_hash != idempotency.request_hash:
                raise InvalidInput("Idempotency-Key", "was already used for a different request")
            found = connection.execute(select(*COLUMNS).where(messages.c.id.in_(row.message_ids)))
            by_id = {r.id: teaser_from_mapping(r._mapping) for r in found}
            if len(by_id) < len(row.message_ids):
                # Retention or an erasure took them: the send was done, its answer is gone.
                raise Conflict(
                    "the send with this Idempotency-Key was done, and its messages have since "
                    "been deleted (past retention, or erased); a new send needs a new key",
                    code="idempotent_result_gone",
                )
            return [by_id[i] for i in row.message_ids]

        return await self._database.read(find)

    async def recover(
        self, site_id: str, session_id: str, since: int, path: str | None = None
    ) -> list[Teaser] | None:
        """What a client that last saw `since` missed although it was already handed out
        (a poll answer lost on the way). None for a position this session never reached:
        an unknown position replays nothing."""
        now = self.clock()

        def replay(connection: Connection) -> list[Teaser] | None:
            last = _last_seq(connection, site_id, session_id)
            if last is None or since > last:
                return None
            rows = connection.execute(
                select(*COLUMNS)
                .where(
                    of_session(site_id, session_id),
                    messages.c.session_seq > since,
                    messages.c.consumed_at.is_not(None),
                    messages.c.expires_at > now,
                    shown_on(path is not None),
                )
                .order_by(messages.c.session_seq),
                {"path": path},
            )
            return [teaser_from_mapping(row._mapping) for row in rows]

        return await self._database.read(replay)

    def _number(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        # The counter row is locked until commit, so concurrent sends to one session
        # take turns and numbers follow commit order, with no gaps.
        per_session: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            per_session.setdefault((row["site_id"], row["session_id"]), []).append(row)
        # Always lock counters in the same (sorted) order: two bulk sends naming the same
        # sessions in different orders would otherwise deadlock on PostgreSQL.
        ordered = sorted(per_session.items())
        lasts = self._writes.count_up(connection, [(s, ss, len(r)) for (s, ss), r in ordered])
        for key, session_rows in ordered:
            _number_rows(session_rows, int(lasts[key]))

    def _remember(
        self,
        connection: Connection,
        request: SendRequest,
        rows: list[dict[str, Any]],
        now: int,
    ) -> None:
        assert request.idempotency is not None
        connection.execute(
            insert(idempotency_keys).values(
                site_id=request.site_id,
                key=request.idempotency.key,
                request_hash=request.idempotency.request_hash,
                message_ids=[row["id"] for row in rows],
                created_at=now,
            )
        )

    async def position(self, site_id: str, session_id: str) -> int:
        """The session_seq of this session's latest message (0: none yet)."""
        last = await self._database.read(partial(_last_seq, site_id=site_id, session_id=session_id))
        return last or 0

    async def claim_pending(
        self,
        site_id: str,
        session_id: str,
        holder: str,
        path: str | None = None,
        limit: int | None = None,
        mine: bool = False,
    ) -> list[Teaser]:
        """Lease a session's deliverable messages (the oldest `limit`) to one socket until
        it acks them; with `mine`, also those already leased to it."""
        return await self._claims.submit(Claim(site_id, session_id, holder, path, limit, mine))

    async def _write_claims(self, claims: Sequence[Claim]) -> list[list[Teaser]]:
        now = self.clock()
        work = partial(self._claim_each, claims=claims, now=now)
        # A second try also takes back what the first may have leased, answer lost.
        again = partial(self._claim_each, claims=claims, now=now, again=True)
        try:
            if len(set(claims)) == 1:  # one statement
                found = await self._database.autocommit(work, again, brief=True)
            else:
                brief = len(claims) <= BRIEF_ROWS
                found = await self._database.write(work, again, brief=brief)
        except Exception:
            # Both tries failed, and the first may still have leased: each holder's next
            # claim takes back what it holds too.
            self._doubted.update(claim.holder for claim in claims)
            raise
        if self._doubted:
            self._doubted.difference_update(claim.holder for claim in claims)
        return found

    def _claim_each(
        self, connection: Connection, claims: Sequence[Claim], now: int, again: bool = False
    ) -> list[list[Teaser]]:
        # One transaction for the sockets woken together (one statement each), taken in
        # session order: two workers' batches then lock rows in the same order.
        found: dict[Claim, list[Teaser]] = {}
        for claim in sorted(set(claims), key=lambda c: (c.site_id, c.session_id, c.holder)):
            parameters = {
                "site": claim.site_id,
                "session": claim.session_id,
                "now": now,
                "path": claim.path,
                "holder": claim.holder,
                "until": now + self.lease_ms,
                "limit": claim.limit,
            }
            doubted = again or claim.mine or claim.holder in self._doubted
            statement = claim_statement(claim.path is not None, claim.limit is not None, doubted)
            found[claim] = _in_seq_order(connection.execute(statement, parameters))
        return [found[claim] for claim in claims]

    async def consume_pending(
        self, site_id: str, session_id: str, path: str | None = None
    ) -> list[Teaser]:
        """Hand a session's deliverable messages to a poll; they are consumed at once."""
        now = self.clock()
        parameters = {"site": site_id, "session": session_id, "now": now, "path": path}
        reported = await self._reported({site_id})

        def consume(connection: Connection, again: bool = False) -> list[Teaser]:
            statement = consume_statement(path is not None, again)
            rows = [row._mapping for row in connection.execute(statement, parameters)]
            if reported and rows:
                write_outbox(connection, [delivered(row, "poll", now) for row in rows])
            return sorted((teaser_from_mapping(row) for row in rows), key=lambda t: t.seq)

        # A second try also hands out what the first consumed at the same `now` (and
        # writes its events again, which stores nothing twice). Reported, it is two
        # statements: a transaction, no longer one that commits by itself.
        run = self._database.write if reported else self._database.autocommit
        return await run(consume, partial(consume, again=True), brief=True)

    async def _reported(self, sites: set[str]) -> set[str]:
        """Those of the sites whose webhook endpoints take teaser.delivered."""
        if self.subscriptions is None:
            return set()
        wanted = WebhookType.DELIVERED
        return {site for site in sites if await self.subscriptions.wants(site, wanted)}

    async def ack(self, site_id: str, session_id: str, message_id: str, holder: str) -> bool:
        """Mark a message the socket `holder` sent as consumed; False if it was not theirs."""
        return await self._acks.enqueue(Ack(site_id, session_id, message_id, holder))

    def queue_ack(self, ack: Ack, done: Done[Ack, bool]) -> None:
        """The same, without waiting: `done` is told the outcome once it is written."""
        self._acks.post(ack, done)

    async def _write_acks(self, acks: Sequence[Ack]) -> list[bool]:
        # One statement for the batch. Message ids are unique, so matching any of the
        # batch's holders is only looser than matching each ack's own holder when a lease
        # ran out and another socket re-sent the message: it reached a client either way.
        ids = [ack.message_id for ack in acks]
        holders = sorted({ack.holder for ack in acks})
        now = self.clock()
        reported = await self._reported({ack.site_id for ack in acks})

        def write(connection: Connection, again: bool = False) -> set[tuple[str, str, str]]:
            consumed = self._writes.ack(connection, ids, holders, now, again=again)
            if reported:
                _report_acks(connection, consumed, reported, now)
            return consumed

        run = self._database.write if reported else self._database.autocommit
        # Also counts what a first try consumed (at this same `now`), answer lost.
        consumed = await run(write, partial(write, again=True), brief=len(acks) <= BRIEF_ROWS)
        answers = []
        for ack in acks:
            key = (ack.message_id, ack.site_id, ack.session_id)
            answers.append(key in consumed)
            consumed.discard(key)  # a repeated ack in the same batch consumed nothing
        return answers

    async def release(self, holder: str, message_ids: Collection[str] | None = None) -> int:
        """Give back what a closed socket sent but never got acked, for the next poll or
        socket. With `message_ids` (what the socket knows it holds) the lookup goes by id;
        without, every message of the holder is found by a scan."""
        self._doubted.discard(holder)
        condition = and_(
            messages.c.claimed_by == holder,
            messages.c.settled_at.is_(None),  # the scan goes through unsettled messages only
            messages.c.consumed_at.is_(None),
        )
        if message_ids is not None:
            if not message_ids:
                return 0
            condition = and_(condition, messages.c.id.in_(sorted(message_ids)))
        statement = update(messages).where(condition).values(claimed_by=None, claimed_until=None)
        return await self._database.autocommit(lambda c: c.execute(statement).rowcount)

    async def get(self, site_id: str, message_id: str) -> Teaser | None:
        statement = select(*COLUMNS).where(
            messages.c.id == message_id, messages.c.site_id == site_id
        )
        row = await self._database.read(lambda connection: connection.execute(statement).first())
        return None if row is None else teaser_from_mapping(row._mapping)

    async def settle(self) -> int:
        """Move delivered and expired messages out of the small index of unsettled ones,
        into the session history index: up to SETTLE_BATCH in one statement, the rest on
        the next call. Returns how many moved."""
        return await self._database.autocommit(
            lambda connection: connection.execute(SETTLE, {"now": self.clock()}).rowcount
        )

    async def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database file, off the writer's path."""
        await self._database.checkpoint()

    async def purge_expired(self, retention_ms: int) -> PurgeReport:
        """Count messages that expired unseen since the last call; delete those past retention."""
        now = self.clock()
        newly_expired = select(func.count()).where(
            messages.c.consumed_at.is_(None),
            messages.c.expires_at > self._expired_counted_until,
            messages.c.expires_at <= now,
        )

        def purge(connection: Connection) -> PurgeReport:
            expired = int(connection.execute(newly_expired).scalar_one())
            result = connection.execute(
                delete(messages).where(messages.c.expires_at < now - retention_ms)
            )
            connection.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.created_at < now - IDEMPOTENCY_WINDOW_MS
                )
            )
            # A counter outlives its messages only while a client might still resume from it.
            connection.execute(delete(session_counters).where(~has_messages(session_counters)))
            return PurgeReport(expired=expired, deleted=result.rowcount)

        report = await self._database.write(purge)
        self._expired_counted_until = now
        return report


def _write_alone(connection: Connection, row: dict[str, Any]) -> list[list[Teaser]]:
    written = connection.execute(SEND_ALONE, {f"p_{k}": row[k] for k in SENT_COLUMNS})
    row["seq"], row["session_seq"] = written.one()
    return [[teaser_from_mapping(row)]]


def _stored_or(
    connection: Connection,
    batches: list[list[dict[str, Any]]],
    write: Callable[[Connection], list[list[Teaser]]],
) -> list[list[Teaser]]:
    """A send's second try: its first one may have committed with only the answer lost.
    Its message ids (chosen before either try) tell: all of them stored (one transaction
    stores all or none), the send is done; none, it is written now."""
    stored = _stored(connection, batches)
    return write(connection) if stored is None else stored


def _stored(
    connection: Connection, batches: list[list[dict[str, Any]]]
) -> list[list[Teaser]] | None:
    """The send's teasers as stored, if it was; None if none of its ids is."""
    rows = [row for batch in batches for row in batch]
    ids = [row["id"] for row in rows]
    found = connection.execute(STORED_NUMBERS, {"ids": ids})
    stored = {row_id: (seq, number) for row_id, seq, number in found}
    if not stored:
        return None
    for row in rows:
        row["seq"], row["session_seq"] = stored[row["id"]]
    return [[teaser_from_mapping(row) for row in batch] for batch in batches]


def _last_seq(connection: Connection, site_id: str, session_id: str) -> int | None:
    statement = select(session_counters.c.last_seq).where(
        session_counters.c.site_id == site_id, session_counters.c.session_id == session_id
    )
    last = connection.execute(statement).scalar_one_or_none()
    return None if last is None else int(last)


def _report_acks(
    connection: Connection, consumed: set[tuple[str, str, str]], sites: set[str], now: int
) -> None:
    """teaser.delivered (via the socket) for the acked messages of the reported sites."""
    ids = sorted(message_id for message_id, site_id, _ in consumed if site_id in sites)
    if ids:
        found = connection.execute(select(*COLUMNS).where(messages.c.id.in_(ids)))
        write_outbox(connection, [delivered(row._mapping, "websocket", now) for row in found])


def _in_seq_order(rows: Iterable[Row[Any]]) -> list[Teaser]:
    return sorted((teaser_from_mapping(row._mapping) for row in rows), key=lambda t: t.seq)
