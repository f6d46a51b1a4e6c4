"""A typed client for the Teaser API: send teasers to visitor sessions, read their status."""

from teaser_client.async_client import AsyncTeaser
from teaser_client.errors import (
    BadRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ServerError,
    TeaserError,
    Unauthorized,
    UnexpectedAnswer,
    Unreachable,
)
from teaser_client.models import DeliveredVia, Draft, Message, Priority, Status
from teaser_client.sync_client import Teaser

__all__ = [
    "AsyncTeaser",
    "BadRequest",
    "DeliveredVia",
    "Draft",
    "Forbidden",
    "InvalidInput",
    "Message",
    "NotFound",
    "Priority",
    "RateLimited",
    "ServerError",
    "Status",
    "Teaser",
    "TeaserError",
    "Unauthorized",
    "UnexpectedAnswer",
    "Unreachable",
]
