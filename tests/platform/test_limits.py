"""Limits that keep one client or tenant from hurting the others: 429 with Retry-After,
socket quotas, oversized frames, and readers too slow to keep up."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.auth import address_key
from realtime.platform import RateLimited, ratelimit
from realtime.platform.ratelimit import RateLimiter
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, json_of, new_session_id

SITE = "woodstock_outlet"


async def test_a_site_sending_past_its_rate_gets_429_with_retry_after(
    start_server: ServerFactory,
) -> None:
    server = await start_server(sends_per_second=5)
    session = new_session_id()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answers = [
            await client.put(
                "/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": session, "message": f"m{i}"},
            )
            for i in range(7)
        ]
        polled = await client.post(
            "/api/teaser-messages", json={"sessionId": session, "siteId": SITE}
        )

    assert [a.status_code for a in answers] == [201] * 5 + [429, 429]
    assert json_of(answers[-1])["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert len(json_of(polled)["messages"]) == 5  # refused sends stored nothing


async def test_a_bulk_send_counts_every_message_against_the_rate(
    start_server: ServerFactory,
) -> None:
    server = await start_server(sends_per_second=50)
    batch = [{"sessionId": new_session_id(), "message": "x"} for _ in range(60)]
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=batch)
    assert response.status_code == 429


async def test_one_session_polling_too_fast_is_slowed_without_touching_others(
    start_server: ServerFactory,
) -> None:
    server = await start_server(polls_per_session_per_minute=6)
    busy, calm = new_session_id(), new_session_id()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        statuses = [
            (
                await client.post("/api/teaser-messages", json={"sessionId": busy, "siteId": SITE})
            ).status_code
            for _ in range(12)
        ]
        other = await client.post("/api/teaser-messages", json={"sessionId": calm, "siteId": SITE})

    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    assert other.status_code == 200


async def test_an_address_polling_too_fast_gets_429(start_server: ServerFactory) -> None:
    server = await start_server(polls_per_ip_per_second=2, polls_per_session_per_minute=0)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        statuses = [
            (
                await client.post(
                    "/api/teaser-messages", json={"sessionId": new_session_id(), "siteId": SITE}
                )
            ).status_code
            for _ in range(12)
        ]
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:]


async def test_an_address_may_hold_only_so_many_sockets(start_server: ServerFactory) -> None:
    server = await start_server(sockets_per_ip=2)
    url = f"{server.ws_url}/api/teaser-ws?siteId={SITE}&sessionId="
    async with connect(url + new_session_id()), connect(url + new_session_id()):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + new_session_id()):
                pass
    async with connect(url + new_session_id()) as again:  # a closed socket frees its place
        assert again.state.name == "OPEN"
    assert refused.value.response.status_code == 429


async def test_a_frame_over_64_kib_closes_the_socket_with_1009(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    url = f"{server.ws_url}/api/teaser-ws?siteId={SITE}&sessionId={new_session_id()}"
    async with connect(url, max_size=None) as socket:
        await socket.send(json.dumps({"type": "ack", "id": "x" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_reader_that_stops_acking_is_dropped_and_loses_nothing(
    start_server: ServerFactory,
) -> None:
    server = await start_server(send_timeout=0.5)
    assert server.runtime is not None
    window = server.runtime.hub.timings.window
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?siteId={SITE}&sessionId={session}"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        batch = [{"sessionId": session, "message": f"m{i}"} for i in range(window + 50)]
        async with connect(url) as stalled:
            await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=batch)
            frames = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # reads everything, acks nothing
                    frames.append(json.loads(await asyncio.wait_for(stalled.recv(), 5)))
        await asyncio.sleep(0.2)
        body = {"sessionId": session, "siteId": SITE}
        polled = json_of(await client.post("/api/teaser-messages", json=body))

    teasers = [f for f in frames if f["type"] == "teaser"]
    assert len(teasers) == window  # never more in flight than the window
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert len(polled["messages"]) == window + 50  # nothing acked, so everything comes back


async def test_a_reader_that_acks_gets_more_than_a_window(start_server: ServerFactory) -> None:
    server = await start_server()
    assert server.runtime is not None
    count = server.runtime.hub.timings.window * 3
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?siteId={SITE}&sessionId={session}"
    async with httpx.AsyncClient(base_url=server.base_url) as client, connect(url) as socket:
        batch = [{"sessionId": session, "message": f"m{i}"} for i in range(count)]
        await client.put("/api/teaser-messages", headers=DEMO_HEADERS, json=batch)
        seqs = []
        while len(seqs) < count:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
            if frame["type"] == "teaser":
                seqs.append(frame["seq"])
                await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
    assert seqs == list(range(1, count + 1))


# The buckets themselves: bounded, O(1) to evict, and no reset for sale.


class FrozenClock:
    """Time that moves only when told: no bucket refills unless a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def operations(call: Callable[[], object]) -> int:
    """Bytecode instructions run inside realtime/platform/ratelimit.py during `call`: a
    count of the work, the same on every machine, where a timing would not be."""
    count = 0

    def count_opcodes(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += event == "opcode"
        return count_opcodes

    def enter(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != ratelimit.__file__:
            return None
        frame.f_trace_opcodes = True
        return count_opcodes

    previous = sys.gettrace()
    sys.settrace(enter)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def full_limiter(max_keys: int, clock: FrozenClock) -> RateLimiter:
    """A limiter holding `max_keys` buckets, none refilled: the worst case for eviction."""
    limiter = RateLimiter("tries", rate=1, burst=3, clock=clock, max_keys=max_keys)
    for i in range(max_keys):
        limiter.take(f"filler-{i}")
    return limiter


def test_a_new_key_costs_the_same_work_with_ten_keys_held_as_with_twenty_thousand() -> None:
    clock = FrozenClock()
    small, large = full_limiter(10, clock), full_limiter(20_000, clock)

    work = [
        operations(lambda limiter=limiter: limiter.take("newcomer")) for limiter in (small, large)
    ]

    assert work[0] == work[1] > 0
    assert len(small._buckets) == 10 and len(large._buckets) == 20_000


def test_a_flood_of_fresh_keys_stays_within_the_bound() -> None:
    clock = FrozenClock()
    limiter = full_limiter(1_000, clock)
    for i in range(200_000):
        limiter.take(f"flood-{i}")
        assert len(limiter._buckets) <= 1_000


def test_a_flood_of_fresh_keys_cannot_reset_a_limited_key() -> None:
    clock = FrozenClock()
    limiter = full_limiter(1_000, clock)
    for _ in range(3):
        limiter.take("attacker")
    refused = 0
    for i in range(20_000):
        limiter.take(f"flood-{i}")
        if i % 500 == 0:  # between two of its tries, far fewer keys than the bound
            with pytest.raises(RateLimited):
                limiter.take("attacker")
            refused += 1
    assert refused == 40


def test_the_key_dropped_is_the_one_used_longest_ago() -> None:
    clock = FrozenClock()
    limiter = RateLimiter("tries", rate=1, burst=1, clock=clock, max_keys=2)
    limiter.take("old")
    limiter.take("recent")
    with pytest.raises(RateLimited):
        limiter.take("old")  # refused, but asked: now "recent" is the least recent
    limiter.take("newcomer")

    assert list(limiter._buckets) == ["old", "newcomer"]
    with pytest.raises(RateLimited):
        limiter.take("old")


# Which clients share a bucket: an IPv6 client is its /64.


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"),
        ("2001:db8:1:2::1", "2001:DB8:1:2:0:0:0:1"),  # spelled differently
        ("2001:db8:1:2::1", "2001:0db8:0001:0002:abcd::7"),
        ("fe80::1%eth0", "fe80::2%eth1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),  # IPv4-mapped, from a dual-stack socket
        ("::ffff:c000:201", "192.0.2.1"),
    ],
)
def test_addresses_of_one_ipv6_64_or_one_ipv4_host_share_a_key(one: str, other: str) -> None:
    assert address_key(one) == address_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:3::1"),  # the next /64
        ("2001:db8:1:2::1", "2001:db9:1:2::1"),
        ("192.0.2.1", "192.0.2.2"),  # IPv4 is keyed by host, not by network
        ("::ffff:192.0.2.1", "::ffff:192.0.2.2"),
        ("192.0.2.1", "2001:db8::c000:201"),
    ],
)
def test_addresses_of_different_64s_or_ipv4_hosts_do_not(one: str, other: str) -> None:
    assert address_key(one) != address_key(other)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("203.0.113.9", "203.0.113.9"),
        ("unknown", "unknown"),
        ("testclient", "testclient"),
        ("/run/teaser.sock", "/run/teaser.sock"),
        ("2001:db8::/64", "2001:db8::/64"),
        ("999.1.1.1", "999.1.1.1"),
        ("", ""),
    ],
)
def test_an_address_key_is_the_64_the_ipv4_host_or_the_string_unchanged(
    host: str, key: str
) -> None:
    assert address_key(host) == key


PER_ADDRESS = {
    "polls": ("/api/teaser-messages", {"polls_per_ip_per_second": 2}, 10),
    "events": ("/api/events", {"events_per_ip_per_second": 2}, 10),
    "sessions": ("/api/sessions", {}, 60),
}


def body_for(path: str) -> dict[str, Any]:
    session = new_session_id()
    if path == "/api/events":
        return {"sessionId": session, "siteId": SITE, "type": "page_view", "path": "/"}
    if path == "/api/sessions":
        return {"siteId": SITE}
    return {"sessionId": session, "siteId": SITE}


@pytest.mark.parametrize("limit", PER_ADDRESS)
async def test_clients_of_one_ipv6_64_behind_a_proxy_share_each_per_address_limit(
    start_server: ServerFactory, limit: str
) -> None:
    path, settings, allowed = PER_ADDRESS[limit]
    server = await start_server(
        **settings, polls_per_session_per_minute=0, events_per_minute=0
    )  # the proxy is on loopback, which uvicorn trusts to say who is asking
    async with httpx.AsyncClient(base_url=server.base_url) as client:

        async def ask(address: str) -> int:
            headers = {"X-Forwarded-For": address}
            return (await client.post(path, json=body_for(path), headers=headers)).status_code

        same_64 = [await ask(f"2001:db8:5:6:{i:x}::1") for i in range(allowed + 2)]
        next_64 = await ask("2001:db8:5:7::1")
        ipv4 = await ask("198.51.100.7")

    assert set(same_64[:allowed]) <= {200, 201, 202}, same_64
    assert same_64[allowed:] == [429, 429]
    assert next_64 in {200, 201, 202} and ipv4 in {200, 201, 202}
