"""WebSocket /api/teaser-ws: push at once, pending on connect, consumed only on ack."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.wsprotocol import LeanWebSocketsProtocol
from realtime.delivery.teaser import Draft
from tests.conftest import ServerFactory
from tests.insight.test_dashboard_api import dashboard_socket, sign_in
from tests.support import DEMO_HEADERS, InProcessServer, json_of, new_session_id

SITE = "woodstock_outlet"


def socket_url(server: InProcessServer, session: str, site: str = SITE) -> str:
    return f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={site}"


async def send(client: httpx.AsyncClient, session: str, message: str) -> dict[str, Any]:
    response = await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": message},
    )
    assert response.status_code == 201, response.text
    return json_of(response)


async def next_teaser(socket: ClientConnection, timeout: float = 2.0) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if frame["type"] == "teaser":
            return frame


async def ack(socket: ClientConnection, frame: dict[str, Any]) -> None:
    await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))


async def test_a_send_reaches_the_open_socket_at_once(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session)) as socket:
        started = time.perf_counter()
        sent = await send(client, session, "🎉 20% off chairs today!")
        frame = await next_teaser(socket, timeout=1.0)
        elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert frame == {
        "type": "teaser",
        "id": sent["id"],
        "seq": 1,
        "message": "🎉 20% off chairs today!",
        "priority": "manual",
        "createdAt": sent["createdAt"],
        "expiresAt": sent["expiresAt"],
    }


async def test_a_socket_opened_later_gets_everything_still_pending_in_order(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    sent = [await send(client, session, f"m{i}") for i in range(5)]

    async with connect(socket_url(server, session)) as socket:
        received = [await next_teaser(socket) for _ in sent]

    assert [f["id"] for f in received] == [s["id"] for s in sent]


async def test_messages_sent_to_an_open_socket_arrive_in_send_order(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session)) as socket:
        sent = [await send(client, session, f"m{i}") for i in range(20)]
        received = [await next_teaser(socket) for _ in sent]

    assert [f["id"] for f in received] == [s["id"] for s in sent]


async def test_an_acked_message_is_consumed(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session)) as socket:
        sent = await send(client, session, "hi")
        await ack(socket, await next_teaser(socket))
        await wait_for_status(client, sent["id"], "delivered")

    status = json_of(await client.get(f"/api/teaser-messages/{sent['id']}", headers=DEMO_HEADERS))
    polled = await client.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE})
    assert status["deliveredVia"] == "websocket"
    assert json_of(polled)["messages"] == []


async def test_a_message_never_acked_is_given_to_the_next_poll(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session)) as socket:
        sent = await send(client, session, "lost in transit")
        await next_teaser(socket)  # received, but the tab closes before acking

    await asyncio.sleep(0.2)
    polled = json_of(
        await client.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE})
    )
    assert [m["id"] for m in polled["messages"]] == [sent["id"]]


async def test_a_message_never_acked_is_sent_again_to_the_next_socket(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session)) as socket:
        sent = await send(client, session, "again")
        await next_teaser(socket)

    await asyncio.sleep(0.2)
    async with connect(socket_url(server, session)) as socket:
        frame = await next_teaser(socket)
        await ack(socket, frame)
    assert frame["id"] == sent["id"]


async def test_other_sessions_sockets_hear_nothing(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    mine, theirs = new_session_id(), new_session_id()
    async with connect(socket_url(server, theirs)) as bystander:
        await send(client, mine, "private")
        with pytest.raises(asyncio.TimeoutError):
            await next_teaser(bystander, timeout=0.5)


async def test_the_server_pings_and_closes_a_silent_socket(start_server: ServerFactory) -> None:
    server = await start_server(heartbeat_interval=0.2, heartbeat_timeout=0.7)
    async with connect(socket_url(server, new_session_id())) as silent:
        first = json.loads(await asyncio.wait_for(silent.recv(), 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(silent.recv(), 2)

    assert first == {"type": "ping"}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_a_socket_that_answers_pings_stays_open(start_server: ServerFactory) -> None:
    server = await start_server(heartbeat_interval=0.2, heartbeat_timeout=0.7)
    async with connect(socket_url(server, new_session_id())) as socket:
        deadline = time.monotonic() + 1.5
        pings = 0
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 1))
            if frame["type"] == "ping":
                pings += 1
                await socket.send('{"type":"pong"}')
        await socket.send('{"type":"pong"}')

    assert pings >= 4


@pytest.mark.parametrize(
    "query,headers,status,code",
    [
        ("sessionId=sess_1&siteId=no_such_site", {}, 401, "unknown_site"),
        ("sessionId=bad%20id&siteId=woodstock_outlet", {}, 422, "invalid_field"),
        ("siteId=woodstock_outlet", {}, 422, "invalid_field"),
        (
            "sessionId=sess_1&siteId=woodstock_outlet",
            {"Origin": "https://evil.example"},
            403,
            "origin_not_allowed",
        ),
    ],
)
async def test_a_refused_socket_gets_the_http_status_and_json_error(
    server: InProcessServer, query: str, headers: dict[str, str], status: int, code: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/api/teaser-ws?{query}", additional_headers=headers):
            pass

    response = refused.value.response
    assert response.status_code == status
    assert json.loads(response.body)["error"]["code"] == code


async def wait_for_status(client: httpx.AsyncClient, message_id: str, status: str) -> None:
    for _ in range(50):
        current = json_of(
            await client.get(f"/api/teaser-messages/{message_id}", headers=DEMO_HEADERS)
        )
        if current["status"] == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} never became {status}; last {current}")


async def test_a_socket_gets_its_session_in_seq_order_when_old_and_new_messages_meet(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    # "old" waits in the store, unleased: the socket has to claim it. The sends made while
    # the socket is open go to it directly. Seq must still never go backwards.
    await client.put(
        "/api/teaser-messages",
        headers=DEMO_HEADERS,
        json={"sessionId": session, "message": "old", "onlyOnPath": "/cart"},
    )
    async with connect(socket_url(server, session) + "&path=/cart") as socket:
        await asyncio.gather(*(send(client, session, f"new {i}") for i in range(5)))
        frames = [await next_teaser(socket) for _ in range(6)]
        for frame in frames:
            await ack(socket, frame)

    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert frames[0]["message"] == "old"


async def test_sends_to_an_open_socket_are_delivered_once_and_consumed_on_ack(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session)) as socket:
        sent = await asyncio.gather(*(send(client, session, f"m{i}") for i in range(20)))
        frames = [await next_teaser(socket) for _ in range(20)]
        for frame in frames:
            await ack(socket, frame)
        with pytest.raises(asyncio.TimeoutError):
            await next_teaser(socket, timeout=0.3)  # nothing twice
        await asyncio.sleep(0.2)

    assert sorted(f["id"] for f in frames) == sorted(s["id"] for s in sent)
    assert [f["seq"] for f in frames] == list(range(1, 21))
    for message in sent:
        status = json_of(
            await client.get(f"/api/teaser-messages/{message['id']}", headers=DEMO_HEADERS)
        )
        assert status["status"] == "delivered"


# Sends on this worker lease messages to its sockets and hand them over directly.


async def test_racing_retries_of_one_idempotent_send_leave_the_socket_open_for_more(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    session = new_session_id()
    body = {"sessionId": session, "message": "once"}
    headers = {**DEMO_HEADERS, "Idempotency-Key": "order-9"}
    async with connect(socket_url(server, session)) as socket:
        await asyncio.sleep(0.1)  # settled: its first look in the store is done
        answers = await asyncio.gather(
            *(client.put("/api/teaser-messages", headers=headers, json=body) for _ in range(8))
        )
        first = await next_teaser(socket)
        await ack(socket, first)
        later = await send(client, session, "later")
        second = await next_teaser(socket)
        with pytest.raises(asyncio.TimeoutError):
            await next_teaser(socket, timeout=0.3)
        [connection] = list(server.runtime.hub._holders.values())

    assert {a.status_code for a in answers} == {201}
    assert len({json_of(a)["id"] for a in answers}) == 1
    assert (first["message"], second["id"]) == ("once", later["id"])
    assert connection.reserved == 0  # the retries that lost the race gave their room back


async def test_a_lease_for_a_socket_that_closed_meanwhile_goes_back_to_the_store_at_once(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    assert server.runtime is not None
    hub, store = server.runtime.hub, server.runtime.store
    session = new_session_id()
    async with connect(socket_url(server, session)):
        await asyncio.sleep(0.1)
        reserved = hub.reserve(SITE, {session: 1})
    await asyncio.sleep(0.2)  # the server has seen the close
    leased = await store.send(SITE, [Draft(session, "for a closed tab")], holders=reserved)
    await hub.hand_over(reserved[session], leased)
    await server.runtime.pending.mark([(SITE, session, leased[0].expires_at)])  # as sends do
    polled = json_of(
        await client.post("/api/teaser-messages", json={"sessionId": session, "siteId": SITE})
    )

    assert leased[0].leased_to == reserved[session].holder
    assert [m["message"] for m in polled["messages"]] == ["for a closed tab"]


async def test_an_open_socket_keeps_nothing_of_its_handshake(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    async with connect(socket_url(server, session), user_agent_header="x" * 500) as socket:
        sent = await send(client, session, "still delivered")
        frame = await next_teaser(socket)
        sockets = [p for p in server.open_protocols() if isinstance(p, LeanWebSocketsProtocol)]

        assert frame["id"] == sent["id"]
        assert len(sockets) == 1
        [open_socket] = sockets
        assert not hasattr(open_socket, "request") and not hasattr(open_socket, "response")
        assert open_socket.scope["headers"] == []


async def test_only_the_app_s_heartbeat_pings_a_visitor_socket_and_uvicorn_s_the_dashboard_s(
    server: InProcessServer,
) -> None:
    """The visitor socket is pinged by Teaser's heartbeat (a ping frame the widget answers),
    so uvicorn's protocol ping is not armed for it; the dashboard's socket has only that."""
    operator = await sign_in(server)
    try:
        async with (
            connect(socket_url(server, new_session_id())) as visitor,
            await dashboard_socket(server, operator) as dashboard,
        ):
            await dashboard.recv()  # its hello: the handshake is done and keepalive started
            await visitor.send(json.dumps({"type": "pong"}))
            await asyncio.sleep(0.1)
            armed = {
                p.scope["path"]: p.ping_timer is not None
                for p in server.open_protocols()
                if isinstance(p, LeanWebSocketsProtocol)
            }
    finally:
        await operator.aclose()

    assert armed == {"/api/teaser-ws": False, "/api/dashboard/ws": True}
