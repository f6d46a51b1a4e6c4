"""Getting a teaser to its visitor once: what a teaser is, the store, the live sockets and polls."""

from realtime.delivery.connection import CloseCode, LiveConnection, SocketTimings
from realtime.delivery.dispatch import Delivery
from realtime.delivery.frames import (
    AckFrame,
    ClientFrame,
    ClientTeaser,
    PingFrame,
    PongFrame,
    ServerFrame,
    TeaserFrame,
    client_frame,
)
from realtime.delivery.hub import Hub
from realtime.delivery.pending import MemoryPendingIndex, PendingSessions, SharedPendingIndex
from realtime.delivery.presence import PresenceRecorder
from realtime.delivery.store import IdempotencyKey, TeaserStore
from realtime.delivery.teaser import (
    DEFAULT_EXPIRES_IN_MS,
    MAX_EXPIRES_IN_MS,
    MIN_EXPIRES_IN_MS,
    PATH_PATTERN,
    Draft,
    Priority,
    Status,
    Teaser,
)
from realtime.delivery.waiting import HeldPolls

__all__ = [
    "DEFAULT_EXPIRES_IN_MS",
    "MAX_EXPIRES_IN_MS",
    "MIN_EXPIRES_IN_MS",
    "PATH_PATTERN",
    "AckFrame",
    "ClientFrame",
    "ClientTeaser",
    "CloseCode",
    "Delivery",
    "Draft",
    "HeldPolls",
    "Hub",
    "IdempotencyKey",
    "LiveConnection",
    "MemoryPendingIndex",
    "PendingSessions",
    "PingFrame",
    "PongFrame",
    "PresenceRecorder",
    "Priority",
    "ServerFrame",
    "SharedPendingIndex",
    "SocketTimings",
    "Status",
    "Teaser",
    "TeaserFrame",
    "TeaserStore",
    "client_frame",
]
