"""The socket directory on one Redis and on a Redis Cluster of this module's own (three
masters, a replica each): a socket entered is found, and left only by the socket that
holds it; one lookup finds sessions on every shard; and a lookup while a master is down
finds nothing at once, then finds again once its replica has taken over and the pause is
over. The kill comes last: it leaves the cluster with one master unreplicated."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from realtime.fanout.redis_directory import (
    LOOKUP_TIMEOUT,
    PAUSE_AFTER_FAILURE,
    RedisSocketDirectory,
)
from tests.redis_servers import RedisClusterNodes
from tests.support import require_redis

pytestmark = pytest.mark.asyncio(loop_scope="module")

SITE = "acme"
SESSIONS = [f"visitor-{n}" for n in range(40)]


@pytest.fixture(params=["redis", "cluster"])
def cluster(request: pytest.FixtureRequest) -> RedisClusterNodes | None:
    """The cluster, or None for the shared Redis (the cluster starts only if asked for)."""
    if request.param == "redis":
        return None
    nodes: RedisClusterNodes = request.getfixturevalue("nodes")
    return nodes


@pytest_asyncio.fixture(loop_scope="module")
async def directory(cluster: RedisClusterNodes | None) -> AsyncIterator[RedisSocketDirectory]:
    url = cluster.url if cluster is not None else await require_redis()
    # A prefix of its own, so the shared Redis's other tests never meet these keys.
    directory = RedisSocketDirectory(url, prefix=f"directory-test-{secrets.token_hex(4)}:")
    try:
        yield directory
    finally:
        await directory.close()


async def enter_all(directory: RedisSocketDirectory) -> dict[str, str]:
    holders = {session: f"worker-{n % 3}:{n}" for n, session in enumerate(SESSIONS)}
    for session, holder in holders.items():
        assert await directory.enter(SITE, session, holder)
    return holders


async def masters_of(nodes: RedisClusterNodes, directory: RedisSocketDirectory) -> set[int]:
    return {(await nodes.master_of(directory._key(SITE, session))).port for session in SESSIONS}


async def test_a_socket_entered_is_found_and_left_only_by_the_socket_holding_it(
    directory: RedisSocketDirectory,
) -> None:
    assert await directory.enter(SITE, "ann", "worker-a:1")
    assert await directory.locate(SITE, ["ann", "bob"]) == {"ann": "worker-a:1"}

    # A newer socket of the same session takes the entry; the old one's leave keeps it.
    assert await directory.enter(SITE, "ann", "worker-b:7")
    await directory.leave(SITE, "ann", "worker-a:1")
    assert await directory.locate(SITE, ["ann"]) == {"ann": "worker-b:7"}

    await directory.leave(SITE, "ann", "worker-b:7")
    assert await directory.locate(SITE, ["ann"]) == {}


async def test_one_lookup_finds_sessions_on_every_shard(
    directory: RedisSocketDirectory, cluster: RedisClusterNodes | None
) -> None:
    holders = await enter_all(directory)
    if cluster is not None:
        assert len(await masters_of(cluster, directory)) == 3

    assert await directory.locate(SITE, [*SESSIONS, "nobody"]) == holders
    assert await directory.locate(SITE, []) == {}


async def test_a_lookup_with_a_master_down_finds_nothing_at_once_then_finds_after_failover(
    nodes: RedisClusterNodes,
) -> None:
    directory = RedisSocketDirectory(nodes.url, prefix=f"directory-kill-{secrets.token_hex(4)}:")
    try:
        holders = await enter_all(directory)
        assert await directory.locate(SITE, SESSIONS) == holders
        await asyncio.sleep(0.2)  # replication is asynchronous: the replicas have the entries

        (await nodes.master_of(directory._key(SITE, SESSIONS[0]))).kill()
        failed_at = time.monotonic()
        down = await directory.locate(SITE, SESSIONS)
        took = time.monotonic() - failed_at
        paused = await directory.locate(SITE, SESSIONS)  # Redis is not even asked now

        await nodes.wait_until_whole()
        await asyncio.sleep(max(0.0, failed_at + PAUSE_AFTER_FAILURE - time.monotonic()) + 0.05)
        again = await directory.locate(SITE, SESSIONS)
    finally:
        await directory.close()

    assert (down, paused) == ({}, {})
    assert took < LOOKUP_TIMEOUT + 0.1
    assert again == holders
