"""Sign-in limits, in memory, on Redis and on a Redis Cluster of this module's own: per
address over every account, per account and address, and a short back-off per account
that always ends; all checked before a password is hashed, shared by every worker when
Redis is there, and still in force (in memory) when it is not, or a master of the cluster
is not. That kill comes after every other test on the cluster."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import redis.asyncio as aioredis

from realtime.accounts import SignInLimits
from realtime.accounts.sign_in_limits import Budget
from realtime.platform.errors import RateLimited
from tests.conftest import ServerFactory
from tests.faults.proxy import Fault, FaultProxy
from tests.redis_servers import RedisClusterNodes
from tests.support import InProcessServer, ServerProcess, new_session_id

SITE = "woodstock_outlet"
# Small budgets, so a test sees each limit and its end in a second or two.
SMALL = Budget(
    per_address="6/2 seconds",
    per_account_address="3/2 seconds",
    back_off_after=4,
    back_off_first=1.0,
    back_off_cap=1.0,
)


def an_address() -> str:
    """An address of its own, so tests never share a budget in Redis."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@pytest.fixture(params=["memory", "redis", "cluster"])
def counts_url(request: pytest.FixtureRequest) -> str | None:
    """Where the counts are kept: in memory (no URL), on the shared Redis, or on the
    cluster (which starts only when a test asks for it)."""
    if request.param == "memory":
        return None
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    nodes: RedisClusterNodes = request.getfixturevalue("nodes")
    return nodes.url


@pytest.fixture
async def limits(counts_url: str | None) -> AsyncIterator[SignInLimits]:
    guard = SignInLimits(counts_url, namespace=secrets.token_hex(6), budget=SMALL)
    yield guard
    await guard.close()


async def tries(guard: SignInLimits, email: str, address: str, count: int) -> list[bool]:
    """Which of `count` failed sign-ins were let through to the password check."""
    allowed = []
    for _ in range(count):
        try:
            await guard.check(SITE, email, address)
        except RateLimited:
            allowed.append(False)
            continue
        allowed.append(True)
        await guard.failed(SITE, email, address)
    return allowed


async def test_one_address_trying_many_accounts_is_stopped(limits: SignInLimits) -> None:
    address = an_address()
    allowed = [(await tries(limits, f"user{n}@shop.example", address, 1))[0] for n in range(15)]
    assert allowed == [True] * 6 + [False] * 9


async def test_one_account_from_one_address_is_stopped_and_others_go_on(
    limits: SignInLimits,
) -> None:
    attacker, owner = an_address(), an_address()
    assert await tries(limits, "ann@shop.example", attacker, 5) == [True] * 3 + [False] * 2
    await limits.check(SITE, "ann@shop.example", owner)  # the owner's own address
    await limits.check(SITE, "bob@shop.example", attacker)  # another account from there


async def test_the_back_off_of_an_account_ends_and_is_capped(limits: SignInLimits) -> None:
    email = "ann@shop.example"
    # From many addresses: each stays within its own budgets.
    for _ in range(SMALL.back_off_after + 1):
        assert await tries(limits, email, an_address(), 1) == [True]
    with pytest.raises(RateLimited) as backing_off:
        await limits.check(SITE, email, an_address())
    assert 0 < backing_off.value.retry_after <= SMALL.back_off_cap

    await asyncio.sleep(SMALL.back_off_cap + 0.1)
    await limits.check(SITE, email, an_address())


async def test_a_success_clears_the_accounts_budgets_but_not_the_addresss(
    limits: SignInLimits,
) -> None:
    address = an_address()
    assert await tries(limits, "ann@shop.example", address, 3) == [True] * 3
    await limits.succeeded(SITE, "ann@shop.example", address)
    await limits.check(SITE, "ann@shop.example", address)  # account+address cleared
    # 4 of the address's 6 are spent: 2 more accounts, then no more.
    assert [(await tries(limits, f"user{n}@shop.example", address, 1))[0] for n in range(3)] == [
        True,
        True,
        False,
    ]


async def test_a_refusal_says_when_to_come_back(limits: SignInLimits) -> None:
    address = an_address()
    await tries(limits, "ann@shop.example", address, 3)
    with pytest.raises(RateLimited) as refused:
        await limits.check(SITE, "ann@shop.example", address)
    assert 0 < refused.value.retry_after <= 2


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[tuple[FaultProxy, str]]:
    upstream = urlparse(redis_url)
    proxy = FaultProxy(upstream.port or 6379, upstream.hostname or "127.0.0.1")
    await proxy.start()
    try:
        yield proxy, proxy.url(path=upstream.path or "/0")
    finally:
        await proxy.stop()


@pytest.mark.parametrize("fault", ["refused", "stalled"])
async def test_with_redis_down_the_limits_hold_in_this_workers_memory(
    redis_proxy: tuple[FaultProxy, str], fault: str
) -> None:
    proxy, url = redis_proxy
    guard = SignInLimits(url, namespace=secrets.token_hex(6), budget=SMALL)
    try:
        await guard.check(SITE, "ann@shop.example", an_address())  # Redis answers
        proxy.cut()
        proxy.fault = Fault.REFUSE if fault == "refused" else Fault.STALL
        started = time.monotonic()
        allowed = await tries(guard, "ann@shop.example", an_address(), 5)
        took = time.monotonic() - started
    finally:
        proxy.fault = Fault.NONE
        await guard.close()
    assert allowed == [True] * 3 + [False] * 2
    assert took < 5  # a stalled Redis is given up on quickly, not once per try forever


async def test_two_workers_on_the_cluster_share_the_budgets(nodes: RedisClusterNodes) -> None:
    namespace, address = secrets.token_hex(6), an_address()
    guards = [SignInLimits(nodes.url, namespace=namespace, budget=SMALL) for _ in range(2)]
    try:
        allowed = [
            (await tries(guards[n % 2], f"user{n}@shop.example", address, 1))[0] for n in range(9)
        ]
    finally:
        for guard in guards:
            await guard.close()
    # Counted apart, all 9 would pass (5 and 4, each under 6); together only the first 6.
    assert allowed == [True] * 6 + [False] * 3


async def test_with_a_master_of_the_cluster_killed_the_limits_hold_in_memory(
    nodes: RedisClusterNodes,
) -> None:
    namespace, email, address = secrets.token_hex(6), "ann@shop.example", an_address()
    guard = SignInLimits(nodes.url, namespace=namespace, budget=SMALL)
    try:
        await guard.check(SITE, email, address)  # on the cluster: its budgets are kept there
        (await nodes.master_of(await a_key_of(nodes, namespace))).kill()
        started = time.monotonic()
        allowed = await tries(guard, email, address, 5)
        took = time.monotonic() - started
    finally:
        await guard.close()
    # Counted afresh in memory: the pair's 3, then refusals, and no error on the way.
    assert allowed == [True] * 3 + [False] * 2
    assert took < 2


async def a_key_of(nodes: RedisClusterNodes, namespace: str) -> str:
    """A key the cluster keeps for this namespace (each try of the same pair touches it)."""
    for node in nodes.nodes:
        async with aioredis.from_url(node.url, socket_connect_timeout=1) as client:
            found = await client.keys(f"*{namespace}*")
        if found:
            return str(found[0].decode())
    raise AssertionError(f"no key of namespace {namespace} on the cluster")


# ---- on the server ----------------------------------------------------------------------


async def login(client: httpx.AsyncClient, email: str, password: str, host: str) -> httpx.Response:
    # The servers trust X-Forwarded-For from the loopback, as behind a local proxy.
    return await client.post(
        "/api/operator/login",
        json={"siteId": SITE, "email": email, "password": password},
        headers={"X-Forwarded-For": host},
    )


def a_host() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 1}"


def count_password_checks(server: InProcessServer) -> list[str]:
    """Records each call of the real password check (which still runs), by e-mail."""
    assert server.runtime is not None
    operators = server.runtime.operators
    real = operators.authenticate
    calls: list[str] = []

    async def counted(site_id: str, email: str, password: str) -> Any:
        calls.append(email)
        return await real(site_id, email, password)

    operators.authenticate = counted  # type: ignore[method-assign]
    return calls


async def test_fifteen_accounts_from_one_address_meet_a_429_and_refusals_hash_nothing(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    checked = count_password_checks(server)
    host = a_host()
    answers = [
        await login(client, f"user{n}@woodstock.example", "guess-guess", host) for n in range(15)
    ]
    statuses = [a.status_code for a in answers]
    refused = [a for a in answers if a.status_code == 429]

    assert statuses[0] == 401 and refused, statuses
    assert statuses == sorted(statuses)  # once refused, refused from then on
    assert len(checked) == statuses.count(401)  # a refused try costs no hash
    assert refused[0].json()["error"]["code"] == "rate_limited"
    assert int(refused[0].headers["Retry-After"]) >= 1


async def test_an_attacker_hammering_an_email_does_not_keep_its_owner_out(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    email = f"owner-{new_session_id()[-6:]}@woodstock.example"
    _, password = await server.runtime.operators.create(SITE, email)
    attacker = a_host()
    hammered = [
        (await login(client, email, "guess-guess", attacker)).status_code for _ in range(30)
    ]
    owner = await login(client, email, password, a_host())

    assert 429 in hammered
    assert owner.status_code == 200, owner.text


async def test_a_successful_sign_in_does_not_refill_the_addresss_budget(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    email = f"mine-{new_session_id()[-6:]}@woodstock.example"
    _, password = await server.runtime.operators.create(SITE, email)
    host = a_host()
    statuses = []
    for n in range(15):
        statuses.append(
            (await login(client, f"user{n}@woodstock.example", "x" * 12, host)).status_code
        )
        if n == 4:
            statuses.append((await login(client, email, password, host)).status_code)
    assert 200 in statuses and 429 in statuses
    assert statuses.index(429) <= 11


async def test_limits_are_shared_by_two_workers_on_redis(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    workers = (ServerProcess(env, tmp_path), ServerProcess(env, tmp_path))
    await asyncio.gather(*(asyncio.to_thread(w.start) for w in workers))
    host = a_host()
    try:
        clients = [httpx.AsyncClient(base_url=w.base_url, timeout=10) for w in workers]
        statuses = [
            (
                await login(clients[n % 2], f"u{n}@woodstock.example", "guess-guess", host)
            ).status_code
            for n in range(16)
        ]
        for each in clients:
            await each.aclose()
    finally:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))
    # Alone, each worker would let 10 through; together they let 10 through, not 16.
    assert statuses == [401] * 10 + [429] * 6, statuses


@pytest.fixture
async def server_on_a_redis_that_dies(
    start_server: ServerFactory, redis_proxy: tuple[FaultProxy, str]
) -> AsyncIterator[tuple[InProcessServer, FaultProxy]]:
    proxy, url = redis_proxy
    yield await start_server(redis_url=url), proxy


async def test_sign_in_answers_without_a_500_while_redis_is_down(
    server_on_a_redis_that_dies: tuple[InProcessServer, FaultProxy],
) -> None:
    server, proxy = server_on_a_redis_that_dies
    assert server.runtime is not None
    email = f"ann-{new_session_id()[-6:]}@woodstock.example"
    _, password = await server.runtime.operators.create(SITE, email)
    proxy.cut()
    proxy.fault = Fault.REFUSE
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        wrong = await login(client, email, "guess-guess", a_host())
        right = await login(client, email, password, a_host())
    proxy.fault = Fault.NONE
    assert (wrong.status_code, right.status_code) == (401, 200)
