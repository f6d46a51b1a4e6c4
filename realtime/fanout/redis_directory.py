"""The socket directory on Redis or a Redis Cluster (realtime/fanout/directory.py says
what it is for)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from realtime.fanout.directory import SocketDirectory
from realtime.platform.redis_urls import cluster_client, is_cluster

logger = logging.getLogger("teaser.directory")

# Long enough for any socket's life; a key of a socket whose worker died goes by itself.
ENTRY_SECONDS = 86_400
# A send never waits longer than this on a lookup, and after a failure none is tried for
# PAUSE_AFTER_FAILURE (the send goes the plain way meanwhile).
LOOKUP_TIMEOUT = 0.25
PAUSE_AFTER_FAILURE = 5.0
# Delete the key only if it still names this socket (a newer one may have taken it).
LEAVE_IF_MINE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
)


class RedisSocketDirectory(SocketDirectory):
    enabled = True

    def __init__(self, url: str, *, prefix: str = "") -> None:
        self._prefix = prefix + "teaser:at:"
        self._client: aioredis.Redis | RedisCluster
        self._mget: Callable[[list[str]], Awaitable[list[Any]]]
        if is_cluster(url):
            self._client = self._cluster = cluster_client(url, timeout=LOOKUP_TIMEOUT)
            self._mget = self._mget_by_slot
            self._shape_unsure = False
        else:
            self._client = aioredis.from_url(
                url,
                socket_timeout=LOOKUP_TIMEOUT,
                socket_connect_timeout=LOOKUP_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            self._mget = self._client.mget
        self._leave = self._client.register_script(LEAVE_IF_MINE)
        self._paused_until = 0.0

    def _key(self, site_id: str, session_id: str) -> str:
        return f"{self._prefix}{site_id}:{session_id}"

    async def enter(self, site_id: str, session_id: str, holder: str) -> bool:
        """Name this socket as the session's; whether the directory has it now."""
        if self._paused:
            return False
        try:
            await self._client.set(self._key(site_id, session_id), holder, ex=ENTRY_SECONDS)
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    async def leave(self, site_id: str, session_id: str, holder: str) -> None:
        if self._paused:
            return
        try:
            await self._leave(keys=[self._key(site_id, session_id)], args=[holder])
        except Exception as exc:
            self._failed(exc)

    async def locate(self, site_id: str, session_ids: Iterable[str]) -> dict[str, str]:
        """The holder of each session's socket that the directory names."""
        sessions = list(session_ids)
        if not sessions or self._paused:
            return {}
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                found = await self._mget([self._key(site_id, s) for s in sessions])
        except Exception as exc:
            self._failed(exc)
            return {}
        return {
            session: holder.decode() if isinstance(holder, bytes) else str(holder)
            for session, holder in zip(sessions, found, strict=True)
            if holder is not None
        }

    async def close(self) -> None:
        await self._client.aclose()

    async def _mget_by_slot(self, keys: list[str]) -> list[Any]:
        """One MGET per slot (keys of two slots can't share one), pipelined per node."""
        # A failed single command makes redis-py ask the cluster which node serves which
        # slot; a failed pipeline does not, so after a failover every lookup would go on
        # asking the dead master. A lookup that did not finish has the next one ask anew.
        if self._shape_unsure:
            await self._cluster.aclose()
        self._shape_unsure = True
        found = await self._cluster.mget_nonatomic(keys)
        self._shape_unsure = False
        return found

    @property
    def _paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def _failed(self, exc: Exception) -> None:
        self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning("socket directory unavailable (%r); sends take the plain way", exc)
