"""A send on worker A to a socket on worker B: the socket directory in Redis names B's
socket, so A stores the message already leased to it and hands it over whole through
Redis, and B writes the frame without a claim. Once each, in order, on real workers; and
when the directory is wrong (a socket gone, a worker gone), nothing is lost."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from tests.support import DEMO_HEADERS, DEMO_SITE, ServerProcess, json_of, new_session_id


async def handoffs(client: httpx.AsyncClient, worker: ServerProcess) -> dict[str, float]:
    text = (await client.get(f"{worker.base_url}/metrics")).text
    found = re.findall(r'^teaser_handoffs_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


async def send(client: httpx.AsyncClient, worker: ServerProcess, session: str, text: str) -> str:
    response = await client.put(
        f"{worker.base_url}/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": text},
    )
    assert response.status_code == 201, response.text
    return str(json_of(response)["id"])


async def receive(socket: ClientConnection, count: int, within: float = 5.0) -> list[dict]:
    """`count` teasers, each acked; then a moment more, in which nothing else may come."""
    frames: list[dict] = []
    deadline = time.monotonic() + within
    while len(frames) < count:
        frame = json.loads(await asyncio.wait_for(socket.recv(), deadline - time.monotonic()))
        if frame["type"] == "teaser":
            frames.append(frame)
            await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
    with pytest.raises(TimeoutError):
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 0.5))
            if frame["type"] == "teaser":
                frames.append(frame)
                break
    return frames


def socket_url(worker: ServerProcess, session: str) -> str:
    return f"{worker.ws_url}/api/teaser-ws?sessionId={session}&siteId={DEMO_SITE}"


async def test_sends_on_a_are_handed_whole_to_the_socket_on_b_once_each_in_order(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    async with connect(socket_url(worker_b, session)) as socket, httpx.AsyncClient() as client:
        await asyncio.sleep(0.3)  # listening, and in the directory
        # From A and from B at once: crossing and local sends of one session interleave.
        ids = await asyncio.gather(
            *(send(client, (worker_a, worker_b)[i % 3 == 2], session, f"m{i}") for i in range(30))
        )
        frames = await receive(socket, 30)
        sent_on_a = await handoffs(client, worker_a)
        received_on_b = await handoffs(client, worker_b)
        states = [
            json_of(
                await client.get(
                    f"{worker_a.base_url}/api/teaser-messages/{i}", headers=DEMO_HEADERS
                )
            )["status"]
            for i in ids
        ]

    assert sorted(f["id"] for f in frames) == sorted(ids)
    assert [f["seq"] for f in frames] == sorted(f["seq"] for f in frames)  # in session order
    assert sent_on_a.get("sent", 0) >= 1 and sent_on_a.get("given_back", 0) == 0
    assert received_on_b.get("received", 0) == sent_on_a["sent"]
    assert states == ["delivered"] * 30


@pytest.mark.parametrize("two_workers", ["redis"], indirect=True)
async def test_a_directory_entry_of_a_worker_that_is_gone_gives_the_message_back_at_once(
    two_workers: tuple[ServerProcess, ServerProcess], redis_url: str
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    prefix = worker_a.env.get("TEASER_REDIS_PREFIX", "")
    admin = aioredis.from_url(redis_url)
    # A socket that was on a worker now dead: named in the directory, nobody listening.
    await admin.set(f"{prefix}teaser:at:{DEMO_SITE}:{session}", "0" * 24)
    try:
        async with httpx.AsyncClient() as client:
            sent = await send(client, worker_a, session, "to a ghost")
            polled = json_of(
                await client.post(
                    f"{worker_b.base_url}/api/teaser-messages",
                    json={"sessionId": session, "siteId": DEMO_SITE},
                )
            )
            counted = await handoffs(client, worker_a)
    finally:
        await admin.aclose()

    assert [m["id"] for m in polled["messages"]] == [sent]  # not leased to the ghost
    assert counted.get("given_back") == 1


async def test_a_socket_that_closes_as_a_send_finds_it_gets_its_message_to_the_next_socket(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    async with httpx.AsyncClient() as client:
        async with connect(socket_url(worker_b, session)):
            await asyncio.sleep(0.3)
        # Closed: the directory may name it for a moment yet; whatever a send leased to
        # it is given back within the grace, and the next socket gets it once.
        sent = await send(client, worker_a, session, "after the close")
        async with connect(socket_url(worker_b, session)) as again:
            frames = await receive(again, 1, within=10.0)

    assert [f["id"] for f in frames] == [sent]


async def test_a_socket_with_a_full_window_gets_the_rest_once_it_acks(
    two_workers: tuple[ServerProcess, ServerProcess],
) -> None:
    worker_a, worker_b = two_workers
    session = new_session_id()
    async with connect(socket_url(worker_b, session)) as socket, httpx.AsyncClient() as client:
        await asyncio.sleep(0.3)
        body = [{"sessionId": session, "message": f"bulk {i}"} for i in range(150)]
        response = await client.put(
            f"{worker_a.base_url}/api/teaser-messages", headers=DEMO_HEADERS, json=body
        )
        assert response.status_code == 201, response.text
        frames = await receive(socket, 150, within=15.0)

    assert [f["message"] for f in frames] == [f"bulk {i}" for i in range(150)]
