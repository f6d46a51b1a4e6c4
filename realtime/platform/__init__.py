"""What every wing stands on: settings, time, errors, ids, metrics, limits, the database."""

from realtime.platform.clock import Clock, IsoTime, iso_time, now_ms
from realtime.platform.config import MAX_POLL_WAIT_MS, Settings
from realtime.platform.database import create_engine, is_disconnect
from realtime.platform.errors import (
    BadRequest,
    BrokerUnavailable,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    RulesError,
    StoreUnavailable,
    TeaserError,
    Unauthorized,
)
from realtime.platform.ids import (
    EMAIL,
    FORBIDDEN_CHARACTERS,
    SESSION_ID,
    SITE_ID,
    check_session_id,
    check_site_id,
)
from realtime.platform.metrics import Metrics, prepare_worker_metrics
from realtime.platform.ratelimit import Limits, RateLimiter
from realtime.platform.refusals import MISSING_FIELD, UNKNOWN_FIELD, problem_and_path

__all__ = [
    "EMAIL",
    "FORBIDDEN_CHARACTERS",
    "MAX_POLL_WAIT_MS",
    "MISSING_FIELD",
    "SESSION_ID",
    "SITE_ID",
    "UNKNOWN_FIELD",
    "BadRequest",
    "BrokerUnavailable",
    "Clock",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "IsoTime",
    "Limits",
    "Metrics",
    "NotFound",
    "RateLimited",
    "RateLimiter",
    "RulesError",
    "Settings",
    "StoreUnavailable",
    "TeaserError",
    "Unauthorized",
    "check_session_id",
    "check_site_id",
    "create_engine",
    "is_disconnect",
    "iso_time",
    "now_ms",
    "prepare_worker_metrics",
    "problem_and_path",
]
