"""Wires the domain together for one worker and runs its housekeeping."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

from realtime.accounts.operator_sessions import OperatorSessions
from realtime.accounts.operators import OperatorRegistry
from realtime.accounts.privacy import Privacy
from realtime.accounts.revocations import VisitorRevocations
from realtime.accounts.sessions import TOKEN_LIFETIME_MS, SessionTokens
from realtime.accounts.sign_in_limits import SignInLimits
from realtime.accounts.sign_in_links import (
    DEV_SIGN_IN_LOGGER,
    SIGN_IN_LINK_TTL_MS,
    SignInLinks,
    local_base_url,
    sign_in_url,
)
from realtime.accounts.sites import SiteRegistry
from realtime.delivery.connection import SocketTimings
from realtime.delivery.dispatch import Delivery
from realtime.delivery.hub import Hub
from realtime.delivery.pending import MemoryPendingIndex, PendingSessions, SharedPendingIndex
from realtime.delivery.presence import PresenceRecorder
from realtime.delivery.store import TeaserStore
from realtime.delivery.waiting import HeldPolls
from realtime.fanout.activity import ActivityFeed
from realtime.fanout.broker import Broker
from realtime.fanout.channels import sign_out_channel
from realtime.fanout.directory import SocketDirectory
from realtime.insight.analytics import Analytics
from realtime.insight.conversions import Conversions
from realtime.insight.journey import Journeys
from realtime.migrations.migrate import upgrade
from realtime.platform.clock import Clock, now_ms
from realtime.platform.config import Settings
from realtime.platform.database import create_engine, is_disconnect
from realtime.platform.errors import StoreUnavailable
from realtime.platform.metrics import Metrics
from realtime.platform.outbox import Subscriptions
from realtime.platform.ratelimit import Limits
from realtime.targeting.intake import EventIntake
from realtime.targeting.rulebook import RuleBook
from realtime.targeting.templates import TemplateGenerator
from realtime.targeting.wordings import SessionWordings
from realtime.webhooks import (
    DeliveryQueue,
    Dispatcher,
    RetryPolicy,
    Sender,
    WebhookEndpoints,
    new_holder,
)

logger = logging.getLogger("teaser")

DEMO_SITE = "woodstock_outlet"
DEMO_KEY = "woodstock_rt_key_2024"
DEMO_OPERATOR = "demo@woodstock.example"
# Delivered and expired messages move to the session history index this often, many at a
# time (TeaserStore.settle); until then the small index of unsettled ones finds them.
SETTLE_INTERVAL = 2.0
# SQLite's WAL gains a few thousand pages a second under load: checkpoints keep it short.
CHECKPOINT_INTERVAL = 1.0
REVOCATION_REFRESH = 2.0
# The hot path counts with a plain `+=`; this often the counts reach prometheus_client,
# which is what a scrape of any worker reads (docs/metrics.md).
METRICS_FLUSH_INTERVAL = 1.0
# teaser.expired waits this long past a socket's lease on an expired teaser: a socket
# that was sent it before it expired may still ack it.
EXPIRY_GRACE_MS = 5_000


def server_secret(settings: Settings) -> bytes:
    """TEASER_SECRET_KEY, or in development one derived from the database URL: stable across
    restarts and shared by workers of one database, and never used in production."""
    if settings.secret_key:
        return settings.secret_key.encode()
    logger.warning("TEASER_SECRET_KEY is not set; using a development secret.")
    return hashlib.sha256(f"teaser-development:{settings.database_url}".encode()).digest()


class Runtime:
    """One worker's domain, built wing by wing (each builder wires one wing from the
    ones below it), and the housekeeping that keeps it tidy."""

    def __init__(self, settings: Settings, *, clock: Clock = now_ms) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = create_engine(settings.database_url)
        self.secret = server_secret(settings)
        self.metrics = Metrics()
        self.limits = _limits(settings)
        # Which sites' webhook endpoints take which events: asked where events happen.
        self.subscriptions = Subscriptions(self.engine, ttl=settings.site_cache_ttl)
        self._build_fanout()
        self._build_accounts()
        self._build_delivery()
        self._build_targeting()
        self._build_insight()
        self._build_webhooks()
        self._tasks: list[asyncio.Task[None]] = []

    def _build_fanout(self) -> None:
        self.broker = Broker(
            self.settings.redis_url or "memory://", prefix=self.settings.redis_prefix
        )
        self.activity = ActivityFeed(self.broker)

    def _build_accounts(self) -> None:
        settings, clock = self.settings, self.clock
        self.visitor_revocations = VisitorRevocations(
            self.engine,
            lifetime_ms=TOKEN_LIFETIME_MS,
            clock=clock,
            on_revoked=self._close_revoked_sockets,
        )
        self.session_tokens = SessionTokens(
            self.secret,
            required=settings.session_tokens_required,
            revoked=self.visitor_revocations,
            clock=clock,
        )
        self.sites = SiteRegistry(self.engine, clock=clock, cache_ttl=settings.site_cache_ttl)
        self.operators = OperatorRegistry(
            self.engine, clock=clock, on_signed_out=self.announce_sign_out
        )
        self.operator_sessions = OperatorSessions(
            self.engine, clock=clock, on_signed_out=self.announce_sign_out
        )
        self.privacy = Privacy(self.engine, clock=clock, revocations=self.visitor_revocations)
        self.sign_in_links = SignInLinks(self.engine, clock=clock)
        # Password guessing, counted before any hashing; on Redis, across workers. The
        # namespace keeps two deployments sharing one Redis (they have their own secrets)
        # out of each other's counts.
        namespace = hashlib.sha256(b"teaser sign-in limits:" + self.secret).hexdigest()[:16]
        self.sign_in_limits = SignInLimits(settings.redis_url, namespace=namespace)

    def _build_delivery(self) -> None:
        settings, clock = self.settings, self.clock
        self.store = TeaserStore(
            self.engine,
            clock=clock,
            lease_ms=settings.claim_lease_ms,
            subscriptions=self.subscriptions,
        )
        self.presence = PresenceRecorder(self.engine, clock=clock)
        index = (
            SharedPendingIndex(self.broker, clock)
            if settings.redis_url
            else MemoryPendingIndex(clock)
        )
        self.pending = PendingSessions(index, self.engine, self.broker, clock)
        self.held_polls = HeldPolls(settings.long_polls)
        index.on_marked = self.held_polls.marked
        self.hub = Hub(
            self.store,
            self.broker,
            self.presence,
            self.metrics,
            self.activity,
            self.pending,
            _socket_timings(settings),
            _socket_directory(settings),
        )
        self.delivery = Delivery(
            self.store,
            self.hub,
            self.presence,
            self.metrics,
            self.activity,
            self.pending,
            self.held_polls,
            recheck_seconds=settings.poll_interval_ms / 1000,
        )
        self.metrics.gauge(
            "teaser_held_polls", "Polls held open (long-polling).", lambda: len(self.held_polls)
        )

    def _build_targeting(self) -> None:
        rules_dir = self.settings.rules_dir
        self.rulebook = RuleBook(Path(rules_dir) if rules_dir else None)
        self.events = EventIntake(
            self.engine,
            self.rulebook,
            self.delivery,
            self.activity,
            TemplateGenerator(),
            self.metrics,
            clock=self.clock,
            subscriptions=self.subscriptions,
        )
        self.wordings = SessionWordings(self.engine, self.rulebook)

    def _build_insight(self) -> None:
        settings, clock = self.settings, self.clock
        # An idle socket marks presence on each heartbeat, written at the next flush.
        socket_presence = settings.heartbeat_interval + settings.poll_flush_interval + 5
        self.analytics = Analytics(
            self.engine, clock=clock, socket_presence_ms=int(socket_presence * 1000)
        )
        self.conversions = Conversions(self.engine, clock=clock)
        self.journeys = Journeys(self.engine, self.analytics, clock=clock)

    def _build_webhooks(self) -> None:
        settings, clock = self.settings, self.clock
        self.webhooks = WebhookEndpoints(
            self.engine,
            self.subscriptions,
            production=settings.production,
            allow_private=settings.webhook_allow_private,
            clock=clock,
        )
        sender = Sender(
            timeout=settings.webhook_timeout,
            production=settings.production,
            allow_private=settings.webhook_allow_private,
        )
        # An endpoint's lease outlives any one attempt; it is renewed after each.
        lease_ms = int((2 * settings.webhook_timeout + 5) * 1000)
        queue = DeliveryQueue(self.engine, clock=clock, holder=new_holder(), lease_ms=lease_ms)
        policy = RetryPolicy(
            base=settings.webhook_retry_base,
            cap=settings.webhook_retry_cap,
            retry_for_ms=int(settings.webhook_retry_for * 1000),
            disable_after_ms=int(settings.webhook_disable_after_days * 86_400_000),
        )
        self.dispatcher = Dispatcher(
            queue,
            self.subscriptions,
            sender,
            policy,
            clock=clock,
            expiry_grace_ms=settings.claim_lease_ms + EXPIRY_GRACE_MS,
            interval=settings.webhook_interval,
        )

    async def start(self) -> None:
        if self.settings.auto_migrate:
            await upgrade(self.engine)
        if not self.settings.production:
            await self._ensure_demo_site()
            await self._ensure_demo_operator()
        await self.visitor_revocations.refresh()
        await self.broker.connect()
        await self.pending.start()
        self.activity.start()
        self.hub.start()
        _calm_garbage_collector()
        self._every(self.settings.purge_interval, self.purge, "purge")
        self._every(SETTLE_INTERVAL, self.store.settle, "settle")
        self._every(CHECKPOINT_INTERVAL, self.store.checkpoint, "checkpoint")
        self._every(self.settings.poll_flush_interval, self.presence.flush, "presence-flush")
        self._every(self.settings.purge_interval, self.operator_sessions.prune, "operator-sessions")
        # Another worker's revocation of a visitor session reaches this one within this.
        self._every(REVOCATION_REFRESH, self.visitor_revocations.refresh, "revocations")
        self._every(METRICS_FLUSH_INTERVAL, self._flush_metrics, "metrics-flush")
        self._every(self.settings.webhook_interval, self.dispatcher.tick, "webhooks")

    async def stop(self) -> None:
        # Sockets and held polls first, so widgets go to another worker at once.
        self.held_polls.end_all()
        await self.hub.close_all()
        await self.hub.stop()
        with suppress(Exception):
            await self.store.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        await self.dispatcher.stop()  # what it had not recorded is sent again later
        with suppress(Exception):
            await self.presence.flush()
        self.metrics.close()  # this worker's last counts, and no more open sockets
        await self.activity.stop()
        await self.pending.stop()
        await self.sign_in_limits.close()
        await self.broker.disconnect()
        await self.hub.directory.close()
        await self.engine.dispose()

    async def _flush_metrics(self) -> None:
        self.metrics.flush()

    async def _close_revoked_sockets(self, sessions: list[tuple[str, str]]) -> None:
        for site_id, session_id in sessions:
            await self.hub.close_session(site_id, session_id, "session ended")

    async def announce_sign_out(self, operator_id: int) -> None:
        await self.broker.publish(sign_out_channel(operator_id))

    async def purge(self) -> None:
        report = await self.store.purge_expired(self.settings.message_retention_s * 1000)
        self.metrics.expired.inc(report.expired)
        self.pending.prune()
        # Redis may have lost markers it was never told about (eviction, a flush, a
        # failover): re-marking from the store bounds that to one purge interval.
        await self.pending.rebuild()
        await self.privacy.purge_older_than(self.settings.event_retention_days)
        await self.visitor_revocations.prune()
        await self.dispatcher.purge()

    async def _ensure_demo_site(self) -> None:
        await self.sites.ensure(DEMO_SITE, DEMO_KEY)
        logger.warning(
            "Dev mode: demo site '%s' is active with the public API key '%s'. "
            "Set TEASER_ENV=production to run without it.",
            DEMO_SITE,
            DEMO_KEY,
        )

    async def _ensure_demo_operator(self) -> None:
        """On every start in dev mode: who to sign in as, and a link that does it once. No
        password is printed (nobody knows the generated one; `teaser operator reset` sets
        one). Only this logger's lines may name an address or carry a token."""
        await self.operators.ensure(DEMO_SITE, DEMO_OPERATOR)
        operator = await self.operators.find(DEMO_SITE, DEMO_OPERATOR)
        if operator is None:
            return  # removed by hand since: nobody to sign in as
        token = await self.sign_in_links.issue(operator.id)
        base = local_base_url()
        dev_sign_in = logging.getLogger(DEV_SIGN_IN_LOGGER)
        dev_sign_in.warning(
            "Dashboard: %s/dashboard, as the demo operator %s of site '%s'.",
            base,
            DEMO_OPERATOR,
            DEMO_SITE,
        )
        dev_sign_in.warning(
            "Sign in with one click, once, within %d minutes: %s (a new link at each start; "
            "`teaser operator reset %s %s` sets a password instead)",
            SIGN_IN_LINK_TTL_MS // 60_000,
            sign_in_url(base, token),
            DEMO_SITE,
            DEMO_OPERATOR,
        )

    def _every(self, seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except StoreUnavailable as exc:
                    # An outage, not a bug: one line per round, no traceback.
                    logger.warning("housekeeping job '%s' waits for the database: %s", name, exc)
                except Exception as exc:
                    if not is_disconnect(exc):
                        logger.exception("housekeeping job '%s' failed; retrying later", name)
                    else:
                        logger.warning("housekeeping job '%s' lost the database; retrying", name)

        self._tasks.append(asyncio.create_task(loop(), name=name))


def _limits(settings: Settings) -> Limits:
    return Limits(
        sends_per_second=settings.sends_per_second,
        polls_per_session_per_minute=settings.polls_per_session_per_minute,
        polls_per_ip_per_second=settings.polls_per_ip_per_second,
        events_per_session_per_minute=settings.events_per_minute,
        events_per_ip_per_second=settings.events_per_ip_per_second,
        sockets_per_ip=settings.sockets_per_ip,
    )


def _socket_directory(settings: Settings) -> SocketDirectory:
    """On Redis where there is Redis (imported only then: one worker never loads it)."""
    if not settings.redis_url:
        return SocketDirectory()
    from realtime.fanout.redis_directory import RedisSocketDirectory

    return RedisSocketDirectory(settings.redis_url, prefix=settings.redis_prefix)


def _socket_timings(settings: Settings) -> SocketTimings:
    return SocketTimings(
        lease_seconds=settings.claim_lease_ms / 1000,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        send_timeout=settings.send_timeout,
        recheck_interval=settings.poll_interval_ms / 1000,
    )


def _calm_garbage_collector() -> None:
    # A full collection walks every live object: with a thousand sockets open it paused
    # a random request for 100 ms and more, which was the whole p99 under load. What is
    # alive once started (modules, tables, compiled statements) never becomes garbage, so
    # it is frozen out of collections, and the young generations are collected rarely.
    gc.freeze()
    gc.set_threshold(20_000, 100, 100)
