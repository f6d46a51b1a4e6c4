from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from realtime.platform.errors import ConfigError
from realtime.platform.redis_urls import CLUSTER_SCHEMES, cluster_address, is_cluster

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./teaser.db"
MIN_SECRET_KEY_LENGTH = 32
# Below this, ordinary browser requests (cookies, user agent, client hints) would not fit.
MIN_HEADER_BYTES = 4096
# The longest `wait` a poll may ask (realtime/contract/fields.py): many proxies and load
# balancers cut an answer that stays silent longer.
MAX_POLL_WAIT_MS = 30_000
REDIS_PREFIX = re.compile(r"[A-Za-z0-9._:-]{0,64}")
REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, read once at start."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_prefix: str = ""
    environment: str = "development"
    max_message_length: int = 500
    poll_interval_ms: int = 8000
    # Long-polling: the longest a poll that asks `wait` is held (0: never held). Below the
    # 30 s after which many proxies and load balancers cut a silent answer.
    long_poll_seconds: float = 25.0
    heartbeat_interval: float = 20.0
    heartbeat_timeout: float = 50.0
    claim_lease_ms: int = 30_000
    purge_interval: float = 60.0
    message_retention_s: int = 86_400
    poll_flush_interval: float = 2.0
    site_cache_ttl: float = 5.0
    auto_migrate: bool = True
    rules_dir: str = "./rules"
    events_per_minute: int = 120
    event_retention_days: int = 90
    # Per worker; 0 switches a limit off.
    sends_per_second: int = 10_000
    polls_per_session_per_minute: int = 60
    polls_per_ip_per_second: int = 200
    events_per_ip_per_second: int = 100
    sockets_per_ip: int = 2_000  # also the held polls per address
    long_polls: int = 10_000  # held at once; beyond it a poll is answered at once
    send_timeout: float = 10.0
    # The request head (request line and headers): its size, and the time to send it whole.
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    # After a SIGTERM, seconds of serving on with /readyz answering 503 (api/draining.py).
    drain_seconds: float = 5.0
    # Where /metrics, /livez and /readyz are served instead of the public port (teaser serve).
    ops_port: int | None = None
    # None: required in production, optional in development (so the README's curl works).
    require_session_token: bool | None = None
    # Webhooks (realtime/webhooks/, docs/webhooks.md). A tenant's URL may name a loopback or
    # private address only with this on: off, Teaser can't be aimed at its own network.
    webhook_allow_private: bool = False
    # A failed delivery is tried again after base + random(0, min(cap, base * 2**attempt))
    # seconds, for `retry_for` seconds after the event, then given up.
    webhook_retry_base: float = 5.0
    webhook_retry_cap: float = 3600.0
    webhook_retry_for: float = 86_400.0
    webhook_timeout: float = 10.0
    webhook_disable_after_days: float = 5.0
    # How often each worker looks for new events and due deliveries.
    webhook_interval: float = 0.5
    # Signs operator session cookies; never printed (repr=False).
    secret_key: str = field(default="", repr=False)

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def session_tokens_required(self) -> bool:
        if self.require_session_token is None:
            return self.production
        return self.require_session_token

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        read = _Reader(env)
        settings = cls(
            database_url=read("DATABASE_URL", str, DEFAULT_DATABASE_URL),
            redis_url=read("REDIS_URL", str, "") or None,
            redis_prefix=read("TEASER_REDIS_PREFIX", str, ""),
            environment=read("TEASER_ENV", str, "development"),
            max_message_length=read("TEASER_MAX_MESSAGE_LENGTH", int, 500),
            poll_interval_ms=read("TEASER_POLL_INTERVAL_MS", int, 8000),
            long_poll_seconds=read("TEASER_LONG_POLL_SECONDS", float, 25.0),
            heartbeat_interval=read("TEASER_HEARTBEAT_INTERVAL", float, 20.0),
            heartbeat_timeout=read("TEASER_HEARTBEAT_TIMEOUT", float, 50.0),
            claim_lease_ms=read("TEASER_CLAIM_LEASE_MS", int, 30_000),
            purge_interval=read("TEASER_PURGE_INTERVAL", float, 60.0),
            message_retention_s=read("TEASER_MESSAGE_RETENTION", int, 86_400),
            poll_flush_interval=read("TEASER_POLL_FLUSH_INTERVAL", float, 2.0),
            site_cache_ttl=read("TEASER_SITE_CACHE_TTL", float, 5.0),
            auto_migrate=read("TEASER_AUTO_MIGRATE", _boolean, True),
            rules_dir=read("TEASER_RULES_DIR", str, "./rules"),
            events_per_minute=read("TEASER_EVENTS_PER_MINUTE", int, 120),
            event_retention_days=read("TEASER_EVENT_RETENTION_DAYS", int, 90),
            sends_per_second=read("TEASER_LIMIT_SENDS_PER_SECOND", int, 10_000),
            polls_per_session_per_minute=read("TEASER_LIMIT_POLLS_PER_SESSION_PER_MINUTE", int, 60),
            polls_per_ip_per_second=read("TEASER_LIMIT_POLLS_PER_IP_PER_SECOND", int, 200),
            events_per_ip_per_second=read("TEASER_LIMIT_EVENTS_PER_IP_PER_SECOND", int, 100),
            sockets_per_ip=read("TEASER_LIMIT_SOCKETS_PER_IP", int, 2_000),
            long_polls=read("TEASER_LIMIT_LONG_POLLS", int, 10_000),
            send_timeout=read("TEASER_SEND_TIMEOUT", float, 10.0),
            max_header_bytes=read("TEASER_MAX_HEADER_BYTES", int, 32 * 1024),
            header_timeout=read("TEASER_HEADER_TIMEOUT", float, 10.0),
            drain_seconds=read("TEASER_DRAIN_SECONDS", float, 5.0),
            ops_port=read("TEASER_OPS_PORT", int, 0) or None,
            secret_key=read("TEASER_SECRET_KEY", str, ""),
            require_session_token=read("TEASER_REQUIRE_SESSION_TOKEN", _boolean, None),
            webhook_allow_private=read("TEASER_WEBHOOK_ALLOW_PRIVATE", _boolean, False),
            webhook_retry_base=read("TEASER_WEBHOOK_RETRY_BASE", float, 5.0),
            webhook_retry_cap=read("TEASER_WEBHOOK_RETRY_CAP", float, 3600.0),
            webhook_retry_for=read("TEASER_WEBHOOK_RETRY_FOR", float, 86_400.0),
            webhook_timeout=read("TEASER_WEBHOOK_TIMEOUT", float, 10.0),
            webhook_disable_after_days=read("TEASER_WEBHOOK_DISABLE_AFTER_DAYS", float, 5.0),
            webhook_interval=read("TEASER_WEBHOOK_INTERVAL", float, 0.5),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.environment not in ("development", "production", "test"):
            raise ConfigError(
                f"Config 'TEASER_ENV' has value '{self.environment}'. "
                "Expected 'development', 'production' or 'test'."
            )
        self._validate_redis_url()
        if not REDIS_PREFIX.fullmatch(self.redis_prefix):
            raise ConfigError(
                f"Config 'TEASER_REDIS_PREFIX' has value '{self.redis_prefix}'. Expected at most "
                "64 letters, digits and . _ : - (e.g. 'staging:')."
            )
        if not 1 <= self.max_message_length <= 4000:
            raise ConfigError("Config 'TEASER_MAX_MESSAGE_LENGTH' must be between 1 and 4000.")
        if not 0 <= self.long_poll_seconds <= MAX_POLL_WAIT_MS / 1000:
            raise ConfigError(
                "Config 'TEASER_LONG_POLL_SECONDS' must be between 0 (off) and "
                f"{MAX_POLL_WAIT_MS // 1000}."
            )
        if self.long_polls < 0:
            raise ConfigError("Config 'TEASER_LIMIT_LONG_POLLS' must be 0 (none held) or more.")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ConfigError(
                "Config 'TEASER_HEARTBEAT_TIMEOUT' must be larger than 'TEASER_HEARTBEAT_INTERVAL'."
            )
        if self.max_header_bytes < MIN_HEADER_BYTES:
            raise ConfigError(
                f"Config 'TEASER_MAX_HEADER_BYTES' must be at least {MIN_HEADER_BYTES}."
            )
        if self.header_timeout <= 0:
            raise ConfigError("Config 'TEASER_HEADER_TIMEOUT' must be larger than 0.")
        if not 0 <= self.drain_seconds <= 600:
            raise ConfigError("Config 'TEASER_DRAIN_SECONDS' must be between 0 and 600.")
        if self.ops_port is not None and not 1 <= self.ops_port <= 65535:
            raise ConfigError("Config 'TEASER_OPS_PORT' must be a port number, 1 to 65535.")
        self._validate_webhooks()
        if self.secret_key and len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"Config 'TEASER_SECRET_KEY' must be at least {MIN_SECRET_KEY_LENGTH} characters."
            )
        if self.production and not self.secret_key:
            # A generated key would sign each worker's sessions differently and forget them
            # on restart: fine for a laptop, not for operators.
            raise ConfigError(
                "Config 'TEASER_SECRET_KEY' is required in production "
                f"(at least {MIN_SECRET_KEY_LENGTH} random characters; it signs operator sessions)."
            )

    def _validate_redis_url(self) -> None:
        if self.redis_url is None:
            return
        # The password stays out of the message (it ends up in logs).
        shown = re.sub(r"(://[^:@/]*):[^@/]*@", r"\1:***@", self.redis_url)
        if self.redis_url.partition("://")[0] not in REDIS_SCHEMES:
            raise ConfigError(
                f"Config 'REDIS_URL' has value '{shown}'. Expected redis://, rediss://, "
                "unix://, redis+cluster:// or rediss+cluster:// (e.g. 'redis://localhost:6379/0')."
            )
        if is_cluster(self.redis_url):
            try:
                cluster_address(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"Config 'REDIS_URL' has value '{shown}'. {exc}") from None

    def _validate_webhooks(self) -> None:
        positive = {
            "TEASER_WEBHOOK_RETRY_BASE": self.webhook_retry_base,
            "TEASER_WEBHOOK_RETRY_CAP": self.webhook_retry_cap,
            "TEASER_WEBHOOK_RETRY_FOR": self.webhook_retry_for,
            "TEASER_WEBHOOK_TIMEOUT": self.webhook_timeout,
            "TEASER_WEBHOOK_DISABLE_AFTER_DAYS": self.webhook_disable_after_days,
            "TEASER_WEBHOOK_INTERVAL": self.webhook_interval,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"Config '{name}' must be larger than 0.")
        if self.webhook_retry_cap < self.webhook_retry_base:
            raise ConfigError(
                "Config 'TEASER_WEBHOOK_RETRY_CAP' must be at least 'TEASER_WEBHOOK_RETRY_BASE'."
            )


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def __call__(self, key: str, cast: Callable[[str], T], default: T) -> T:
        raw = self.environ.get(key)
        if raw is None or raw == "":
            return default
        try:
            return cast(raw)
        except ValueError:
            raise ConfigError(
                f"Config '{key}' has value '{raw}'. Not a valid {cast.__name__}."
            ) from None


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_boolean.__name__ = "bool"
