"""One Redis pub/sub link, and what counts as its failure: shared by the plain Redis backend
and the cluster's, which holds one link per shard."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

logger = logging.getLogger("teaser.broker.redis")

T = TypeVar("T")

# Always subscribed, so the pub/sub link exists (and is pinged) before any session. It also
# carries RESYNC_MESSAGE: "a publish of mine was lost, everyone re-read the store".
CONTROL_CHANNEL = "teaser:control"
RESYNC_MESSAGE = "resync"
LINK_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
# What redis-py raises when it uses a connection that broke under it (another task tore it
# down, or the peer reset it): its writer is None (AttributeError), or its transport is
# closed (RuntimeError, from asyncio and uvloop). Taken for a broken link only then.
TORN_DOWN_ERRORS = (AttributeError, RuntimeError)
# redis-py reconnects and resubscribes by itself on a failure (10 times by default): the
# messages published meanwhile are lost and nobody is told. Every failure must reach us.
NEVER_RETRY = Retry(NoBackoff(), 0, supported_errors=())


class LinkBroken(Exception):
    """The pub/sub link failed; it is thrown away whole and another one is opened."""


class Link:
    """One pub/sub connection, on a connection pool of its own, so nothing of a broken
    link is ever reused. Every call to Redis on it goes through `call`."""

    def __init__(self, url: str, timeout: float, name: str) -> None:
        self.client = aioredis.from_url(
            url,
            # CLIENT LIST names it, so an operator (or a test) can tell whose link it is.
            client_name=name,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            socket_keepalive=True,
            retry=NEVER_RETRY,
        )
        self.pubsub: PubSub = self.client.pubsub()
        self.broken = False
        self.last_heard = time.monotonic()

    async def call(self, action: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self.broken:
            raise LinkBroken("the link was closed")
        try:
            return await action(*args, **kwargs)
        except LINK_ERRORS as exc:
            self.broken = True
            raise LinkBroken(f"{type(exc).__name__}: {exc}") from exc
        except TORN_DOWN_ERRORS as exc:
            if not (self.broken or self._torn_down()):
                raise
            self.broken = True
            raise LinkBroken(f"{type(exc).__name__} on a closed connection: {exc}") from exc

    def _torn_down(self) -> bool:
        connection = self.pubsub.connection
        writer = getattr(connection, "_writer", None)
        return writer is None or writer.transport.is_closing()

    async def close(self) -> None:
        self.broken = True
        # Closing what broke may fail in as many ways as it broke; it is gone either way.
        try:
            async with asyncio.timeout(1.0):
                await self.pubsub.aclose()  # type: ignore[no-untyped-call]
                await self.client.aclose()
        except Exception as exc:
            logger.debug("closing a broken Redis link: %r", exc)


async def twice(action: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`action`, and once more if it failed on a connection Redis had closed (it restarted):
    the pool opens a new one for the second. A stall (a timeout) is not tried twice: the
    caller would wait for it twice."""
    try:
        return await action(*args)
    except RedisConnectionError:
        return await action(*args)
