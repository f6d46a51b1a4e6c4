"""`teaser listen` holds a session's socket as the widget does: it prints each teaser once,
acks it so it is delivered, and comes back by itself after the server restarts."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from api.listen import Listener, socket_url
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, DEMO_SITE, InProcessServer, new_session_id


async def send(server: InProcessServer, session_id: str, message: str) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.put(
            "/api/teaser-messages",
            headers=DEMO_HEADERS,
            json={"sessionId": session_id, "message": message, "expiresIn": 60000},
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def status(server: InProcessServer, message_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.get(f"/api/teaser-messages/{message_id}", headers=DEMO_HEADERS)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def printed(out: io.StringIO, text: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in out.getvalue():
        assert asyncio.get_running_loop().time() < deadline, (
            f"never printed {text!r}:\n{out.getvalue()}"
        )
        await asyncio.sleep(0.02)


async def test_a_teaser_is_printed_once_and_acked_so_it_is_delivered_by_websocket(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    session_id = new_session_id()
    out = io.StringIO()
    listening = asyncio.create_task(Listener(server.base_url, DEMO_SITE, session_id, out=out).run())
    try:
        await printed(out, "Listening to session")
        message_id = await send(server, session_id, "🎉 20% off chairs today")
        await printed(out, f"{message_id} [manual] 🎉 20% off chairs today")
        for _ in range(100):
            if (await status(server, message_id))["status"] == "delivered":
                break
            await asyncio.sleep(0.05)
        final = await status(server, message_id)
        assert (final["status"], final["deliveredVia"]) == ("delivered", "websocket")
    finally:
        listening.cancel()
    assert out.getvalue().count(message_id) == 1


async def test_after_a_restart_it_reconnects_and_gets_what_was_sent_meanwhile_once(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    session_id = new_session_id()
    out = io.StringIO()
    listening = asyncio.create_task(Listener(server.base_url, DEMO_SITE, session_id, out=out).run())
    try:
        await printed(out, "Listening to session")
        before = await send(server, session_id, "Before the restart")
        await printed(out, before)
        await asyncio.sleep(0.2)  # the ack, batched, reaches the store
        await server.stop()
        await printed(out, "reconnecting")
        again = InProcessServer(settings=server.settings, port=server.port)
        await again.start()
        try:
            after = await send(again, session_id, "While it was away")
            await printed(out, after, timeout=20)
            assert "Reconnected (since seq 1)" in out.getvalue()
        finally:
            await again.stop()
    finally:
        listening.cancel()
    assert out.getvalue().count(before) == 1
    assert out.getvalue().count(after) == 1


async def test_a_refused_session_ends_it_with_the_servers_reason(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    out = io.StringIO()
    code = await Listener(server.base_url, "no_such_site", new_session_id(), out=out).run()
    assert code == 1
    assert "The server refused the socket: 4" in out.getvalue(), out.getvalue()


@pytest.mark.parametrize(
    ("server", "token", "since", "expected"),
    [
        (
            "http://127.0.0.1:8000",
            None,
            0,
            "ws://127.0.0.1:8000/api/teaser-ws?sessionId=s&siteId=a",
        ),
        (
            "https://t.example",
            "tok",
            7,
            "wss://t.example/api/teaser-ws?sessionId=s&siteId=a&token=tok&since=7",
        ),
    ],
)
def test_the_socket_url_follows_the_servers_scheme(
    server: str, token: str | None, since: int, expected: str
) -> None:
    assert socket_url(server, "a", "s", token, since) == expected
