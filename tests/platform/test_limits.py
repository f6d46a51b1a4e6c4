"""Limits that keep one client or tenant from hurting the others: 429 with Retry-After,
socket quotas, oversized frames, and readers too slow to keep up."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

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
