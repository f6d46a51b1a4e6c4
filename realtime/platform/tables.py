"""The tables. Times are integer epoch milliseconds so SQLite and PostgreSQL compare alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    false,
    or_,
    text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")
# The conditions of teaser_messages' two partial indexes by session; a query must repeat
# one of them to use that index.
UNSETTLED = text("settled_at IS NULL")
SETTLED = text("settled_at IS NOT NULL")


sites = Table(
    "sites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("allowed_origins", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

site_keys = Table(
    "site_keys",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("site_id", String(64), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    # What `teaser key list` shows and `key revoke` takes: 1, 2, 3… within each site, never
    # reused, so "key 1 of acme" names one key whatever other sites hold.
    Column("number", Integer, nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ux_site_keys_site_number", "site_id", "number", unique=True),
)

teaser_messages = Table(
    "teaser_messages",
    metadata,
    # seq orders a session's messages in send order; id is the public handle.
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("site_id", String(64), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # A socket holds a lease on a message between sending it and hearing its ack.
    Column("claimed_by", String(40), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
    Column("consumed_at", BigInteger, nullable=True),
    Column("delivered_via", String(16), nullable=True),
    # Context-aware expiry: deliver only while the visitor's page matches ("/chairs*").
    Column("only_on_path", String(200), nullable=True),
    # 1, 2, 3… per session, without gaps: a reconnecting client says the last one it saw.
    Column("session_seq", BigInteger, nullable=True),
    # Set once a message is delivered or expired, by the store's periodic settle: it then
    # moves from the small index of unsettled messages to the session history index.
    Column("settled_at", BigInteger, nullable=True),
    # Unsettled messages by session: what claims and polls look through. It stays as small
    # as what is waiting or just delivered, so a send or an ack dirties a few hot pages.
    Index(
        "ix_teaser_messages_unsettled",
        "site_id",
        "session_id",
        sqlite_where=UNSETTLED,
        postgresql_where=UNSETTLED,
    ),
    # Every settled message by session, in order. Each new entry lands on a random page (a
    # random session's); written per send, it had been most of the cost of a commit. The
    # settle writes many at once, one page per session however many messages it holds.
    Index(
        "ux_teaser_messages_session_seq",
        "site_id",
        "session_id",
        "session_seq",
        unique=True,
        sqlite_where=SETTLED,
        postgresql_where=SETTLED,
    ),
    Index("ix_teaser_messages_expires", "expires_at"),
    # The dashboard's feed and message counts, per site and period.
    Index("ix_teaser_messages_site_created", "site_id", "created_at"),
)

session_counters = Table(
    "session_counters",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("message_ids", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_idempotency_keys_created", "created_at"),
)

teaser_polls = Table(
    "teaser_polls",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("poll_count", BigInteger, nullable=False, server_default="0"),
    Column("last_transport", String(16), nullable=False, server_default="poll"),
    Index("ix_teaser_polls_last_seen", "site_id", "last_seen"),
)

webhook_events_internal = Table(
    "webhook_events_internal",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("score", Integer, nullable=False, server_default="0"),
    Column("ai_triggered", Boolean, nullable=False, server_default=false()),
    # The trigger fired for a session in the holdout, and nothing was sent: the baseline.
    Column("held_out", Boolean, nullable=False, server_default=false()),
    Column("explanation", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_events_site_created", "site_id", "created_at"),
    Index("ix_events_session", "site_id", "session_id", "created_at"),
)

visitor_sessions = Table(
    "visitor_sessions",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("score", Integer, nullable=False, server_default="0"),
    Column("customer_id", String(128), nullable=True),
    # Kept beside the state so a person's data can be found and erased by address.
    Column("customer_email", String(254), nullable=True),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Index("ix_visitor_sessions_last_seen", "site_id", "last_seen"),
    Index("ix_visitor_sessions_customer_email", "customer_email"),
    Index("ix_visitor_sessions_customer_id", "customer_id"),
)

operators = Table(
    "operators",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("site_id", String(64), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(254), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Sessions signed before this moment are void: a password reset signs everyone out.
    Column("password_changed_at", BigInteger, nullable=False),
    Column("last_login_at", BigInteger, nullable=True),
    Index("ux_operators_site_email", "site_id", "email", unique=True),
)

# A signed-in dashboard: the cookie names it, and it is good only while its row is live.
# The id is the SHA-256 of the cookie's nonce, so a copy of this table signs nobody in.
operator_sessions = Table(
    "operator_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "operator_id", BigInteger, ForeignKey("operators.id", ondelete="CASCADE"), nullable=False
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("address", String(64), nullable=False, server_default=""),
    Column("user_agent", String(200), nullable=False, server_default=""),
    Index("ix_operator_sessions_operator", "operator_id"),
    Index("ix_operator_sessions_expires", "expires_at"),
)

# A development server's one-time sign-in link (accounts/sign_in_links.py): the row goes
# when the link is used, so it signs in once. The id is the SHA-256 of the link's token.
operator_sign_in_links = Table(
    "operator_sign_in_links",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "operator_id", BigInteger, ForeignKey("operators.id", ondelete="CASCADE"), nullable=False
    ),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_operator_sign_in_links_expires", "expires_at"),
)

# Webhooks (realtime/webhooks/, docs/webhooks.md). An endpoint is numbered 1, 2, 3… within
# its site like a key; a removed one keeps its row (without its secret), so its number is
# never given again.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("site_id", String(64), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("url", String(2048), nullable=False),
    # The event types it takes; an empty list takes them all.
    Column("events", JSON, nullable=False),
    # Stored as it is: signing needs the secret itself, not a digest of it.
    Column("secret", String(128), nullable=False),
    # After a rotation the old secret signs too (a second signature) until this moment.
    Column("previous_secret", String(128), nullable=True),
    Column("previous_secret_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("removed_at", BigInteger, nullable=True),
    Column("disabled_at", BigInteger, nullable=True),
    Column("disabled_reason", Text, nullable=True),
    # Since the first failure after the last success: disabled once it is days old.
    Column("failing_since", BigInteger, nullable=True),
    Column("last_delivered_at", BigInteger, nullable=True),
    # The worker sending this endpoint's batch, and until when: one batch in flight.
    Column("claimed_by", String(40), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
    Index("ux_webhook_endpoints_site_number", "site_id", "number", unique=True),
)

# What happened, written in the same transaction as the change it reports. `seq` orders
# events; `event_id` is the webhook-id receivers de-duplicate by (deterministic where the
# event is, so writing it twice is writing it once).
OUTBOX_NEW = text("fanned_out_at IS NULL")
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("event_id", String(100), nullable=False, unique=True),
    Column("site_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Set once a delivery per matching endpoint exists.
    Column("fanned_out_at", BigInteger, nullable=True),
    Index("ix_webhook_outbox_new", "seq", sqlite_where=OUTBOX_NEW, postgresql_where=OUTBOX_NEW),
    Index("ix_webhook_outbox_created", "created_at"),
)

# One event for one endpoint. Pending rows are the work; the rest is history for a week.
DELIVERY_PENDING = text("status = 'pending'")
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column(
        "endpoint_id",
        BigInteger,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_seq", BigInteger, nullable=False),
    Column("session_id", String(128), nullable=False),
    # pending, delivered or failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_by", String(40), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_response", Text, nullable=True),
    Column("last_latency_ms", Integer, nullable=True),
    Column("last_attempt_at", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    # When it was queued (or replayed): retries stop TEASER_WEBHOOK_RETRY_FOR after this.
    Column("created_at", BigInteger, nullable=False),
    Index("ux_webhook_deliveries_endpoint_event", "endpoint_id", "event_seq", unique=True),
    # Whether an endpoint has work due. A lane's later events are never due before its
    # first (a failure moves them on with it), so "due" means "can be sent now".
    Index(
        "ix_webhook_deliveries_due",
        "endpoint_id",
        "next_attempt_at",
        sqlite_where=DELIVERY_PENDING,
        postgresql_where=DELIVERY_PENDING,
    ),
    # An endpoint's pending events session by session, in order: the head of each lane.
    Index(
        "ix_webhook_deliveries_lane",
        "endpoint_id",
        "session_id",
        "event_seq",
        sqlite_where=DELIVERY_PENDING,
        postgresql_where=DELIVERY_PENDING,
    ),
    Index("ix_webhook_deliveries_created", "created_at"),
)


def of_session(site: Any, session: Any) -> ColumnElement[bool]:
    """A session's messages, settled or not. Written as two halves, one per partial index
    by session: a condition on the session alone could use neither."""
    same = and_(teaser_messages.c.site_id == site, teaser_messages.c.session_id == session)
    return or_(
        and_(same, teaser_messages.c.settled_at.is_(None)),
        and_(same, teaser_messages.c.settled_at.is_not(None)),
    )


# Visitor sessions whose tokens were revoked (erased, or ended by the site). A row is kept
# only as long as a token issued before it could still be live.
revoked_visitor_sessions = Table(
    "revoked_visitor_sessions",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("revoked_at", BigInteger, nullable=False),
    Index("ix_revoked_visitor_sessions_at", "revoked_at"),
)
