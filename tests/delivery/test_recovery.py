"""Sequence numbers, recovery after a lost answer, idempotent sends and session tokens."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.accounts.sessions import SessionTokens
from realtime.delivery.store import TeaserStore
from realtime.delivery.teaser import Draft
from tests.conftest import ServerFactory
from tests.support import DEMO_HEADERS, InProcessServer, json_of, new_session_id

SITE = "woodstock_outlet"


async def send(client: httpx.AsyncClient, session: str, message: str, **headers: str) -> Any:
    response = await client.put(
        "/api/teaser-messages",
        headers={**DEMO_HEADERS, **headers},
        json={"sessionId": session, "message": message},
    )
    return response


async def poll(client: httpx.AsyncClient, session: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/api/teaser-messages", json={"sessionId": session, "siteId": SITE, **extra}
    )


async def test_each_session_numbers_its_messages_from_one_without_gaps(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    first = await store.send(SITE, [Draft("a", "1"), Draft("b", "1"), Draft("a", "2")])
    second = await store.send(SITE, [Draft("a", "3")])
    assert [(t.session_id, t.session_seq) for t in [*first, *second]] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("a", 3),
    ]


async def test_concurrent_sends_to_one_session_get_distinct_consecutive_numbers(
    engine: AsyncEngine,
) -> None:
    store = TeaserStore(engine)
    sent = await asyncio.gather(*(store.send(SITE, [Draft("s", f"m{i}")]) for i in range(20)))
    numbers = sorted(t.session_seq or 0 for batch in sent for t in batch)
    assert numbers == list(range(1, 21))
    polled = await store.consume_pending(SITE, "s")
    assert [t.session_seq for t in polled] == list(range(1, 21))  # delivered in number order


async def test_a_poll_answer_lost_on_the_way_is_recovered_from_the_last_number_seen(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    ids = [json_of(await send(client, session, f"m{i}"))["id"] for i in range(3)]
    await poll(client, session)  # consumed, but say the answer never arrived

    from_start = json_of(await poll(client, session, since=0))
    from_two = json_of(await poll(client, session, since=2))
    plain = json_of(await poll(client, session))

    assert [m["id"] for m in from_start["messages"]] == ids and from_start["recovered"] is True
    assert [m["seq"] for m in from_two["messages"]] == [3]
    assert plain["messages"] == [] and "recovered" not in plain


async def test_an_unknown_position_replays_nothing(client: httpx.AsyncClient) -> None:
    session, stranger = new_session_id(), new_session_id()
    await send(client, session, "mine")
    await poll(client, session)

    ahead = json_of(await poll(client, session, since=99))
    other = json_of(await poll(client, stranger, since=0))

    assert (ahead["messages"], ahead["recovered"]) == ([], False)
    assert (other["messages"], other["recovered"]) == ([], False)


@pytest.mark.parametrize("since", [-1, "abc", 1.5, True, "9" * 30])
async def test_a_malformed_position_is_refused(client: httpx.AsyncClient, since: Any) -> None:
    response = await poll(client, new_session_id(), since=since)
    assert response.status_code == 422
    assert json_of(response)["error"]["message"].startswith("since")


async def test_a_socket_resuming_from_a_position_gets_what_it_missed_in_order(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    ids = [json_of(await send(client, session, f"m{i}"))["id"] for i in range(3)]
    await poll(client, session)
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}&since=1"
    async with connect(url) as socket:
        frames = [json.loads(await asyncio.wait_for(socket.recv(), 2)) for _ in range(2)]
    assert [f["id"] for f in frames] == ids[1:]
    assert [f["seq"] for f in frames] == [2, 3]


async def test_a_retried_send_with_the_same_idempotency_key_creates_one_message(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    first = await send(client, session, "once", **{"Idempotency-Key": "order-42"})
    retry = await send(client, session, "once", **{"Idempotency-Key": "order-42"})
    polled = json_of(await poll(client, session))

    assert (first.status_code, retry.status_code) == (201, 201)
    assert json_of(retry)["id"] == json_of(first)["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert [m["message"] for m in polled["messages"]] == ["once"]


async def test_concurrent_retries_with_one_key_still_create_one_message(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    answers = await asyncio.gather(
        *(send(client, session, "once", **{"Idempotency-Key": "k-1"}) for _ in range(8))
    )
    assert {json_of(a)["id"] for a in answers} == {json_of(answers[0])["id"]}
    assert len(json_of(await poll(client, session))["messages"]) == 1


# The same request, written as another client library (or a retry after a reformat) might.
SAME_REQUEST: list[Any] = [
    pytest.param(b'{"sessionId":"%s","message":"hi","expiresIn":60000}', id="compact"),
    pytest.param(b'{\n  "message": "hi",\n  "expiresIn": 60000,\n  "sessionId": "%s"\n}',
                 id="spaced, keys in another order"),
    pytest.param(b'{"sessionId": "%s", "message": "hi", "expiresIn": 60000.0}',
                 id="expiresIn as 60000.0"),
    pytest.param(b'{"sessionId": "%s", "message": "  hi ", "expiresIn": 6e4}',
                 id="untrimmed text, an exponent"),
    pytest.param(b'{"sessionId": "%s", "message": "\\u0068i", "expiresIn": 60000}',
                 id="an escaped letter"),
]  # fmt: skip


@pytest.mark.parametrize("retry", SAME_REQUEST)
async def test_a_retry_that_means_the_same_request_is_a_replay_however_it_is_written(
    client: httpx.AsyncClient, retry: bytes
) -> None:
    session = new_session_id()
    headers = {**DEMO_HEADERS, "Idempotency-Key": f"same-{session}"}
    body = {"sessionId": session, "message": "hi", "expiresIn": 60000}
    first = await client.put("/api/teaser-messages", json=body, headers=headers)
    again = await client.put(
        "/api/teaser-messages", content=retry % session.encode(), headers=headers
    )

    assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
    assert json_of(again)["id"] == json_of(first)["id"]
    assert len(json_of(await poll(client, session))["messages"]) == 1


async def test_a_replay_whose_messages_were_deleted_since_is_409_and_sends_nothing(
    start_server: ServerFactory,
) -> None:
    """Retention (here 0 s) took the message; the key, kept a day, still says it was sent."""
    server = await start_server(message_retention_s=0)
    assert server.runtime is not None
    session = new_session_id()
    headers = {"Idempotency-Key": f"gone-{session}"}
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        body = {"sessionId": session, "message": "soon gone", "expiresIn": 1000}
        first = await client.put("/api/teaser-messages", json=body, headers=DEMO_HEADERS | headers)
        await asyncio.sleep(1.1)
        await server.runtime.purge()
        again = await client.put("/api/teaser-messages", json=body, headers=DEMO_HEADERS | headers)
        polled = json_of(await poll(client, session))

    assert first.status_code == 201
    assert (again.status_code, json_of(again)["error"]["code"]) == (409, "idempotent_result_gone")
    assert polled["messages"] == []


async def test_reusing_an_idempotency_key_for_another_request_is_refused(
    client: httpx.AsyncClient,
) -> None:
    session = new_session_id()
    await send(client, session, "first", **{"Idempotency-Key": "k-2"})
    other = await send(client, session, "different", **{"Idempotency-Key": "k-2"})
    assert other.status_code == 422
    assert json_of(other)["error"]["message"].startswith("Idempotency-Key")
    assert len(json_of(await poll(client, session))["messages"]) == 1


@pytest.mark.parametrize("query", ["api_key=woodstock_rt_key_2024", "key=x", "apiKey=x"])
async def test_an_api_key_in_the_url_is_refused(client: httpx.AsyncClient, query: str) -> None:
    response = await client.put(
        f"/api/teaser-messages?{query}",
        headers=DEMO_HEADERS,
        json={"sessionId": new_session_id(), "message": "x"},
    )
    assert (response.status_code, json_of(response)["error"]["code"]) == (400, "api_key_in_url")


async def test_the_server_mints_sessions_with_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/sessions", json={"siteId": SITE})
    body = json_of(response)
    assert response.status_code == 201
    assert body["sessionId"].startswith("sess_") and len(body["token"]) >= 32
    again = json_of(await client.post("/api/sessions", json={"siteId": SITE}))
    assert again["sessionId"] != body["sessionId"]


async def test_with_tokens_required_a_bare_or_guessed_session_reads_nothing(
    start_server: ServerFactory,
) -> None:
    server = await start_server(require_session_token=True)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        minted = json_of(await client.post("/api/sessions", json={"siteId": SITE}))
        session, token = minted["sessionId"], minted["token"]
        await send(client, session, "for the right tab only")

        bare = await poll(client, session)
        guessed = await poll(client, session, token="A" * 32)
        right = await poll(client, session, token=token)

    assert (bare.status_code, json_of(bare)["error"]["code"]) == (401, "invalid_session_token")
    assert guessed.status_code == 401
    assert [m["message"] for m in json_of(right)["messages"]] == ["for the right tab only"]


async def test_with_tokens_required_a_socket_needs_its_token(start_server: ServerFactory) -> None:
    server = await start_server(require_session_token=True)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        minted = json_of(await client.post("/api/sessions", json={"siteId": SITE}))
    base = f"{server.ws_url}/api/teaser-ws?sessionId={minted['sessionId']}&siteId={SITE}"

    with pytest.raises(InvalidStatus) as refused:
        async with connect(base):
            pass
    async with connect(f"{base}&token={minted['token']}") as socket:
        assert socket.state.name == "OPEN"
    assert refused.value.response.status_code == 401


def test_a_token_is_bound_to_its_site_and_session() -> None:
    tokens = SessionTokens(b"k" * 32, required=True)
    token = tokens.issue("shop-a", "sess_1")
    tokens.check("shop-a", "sess_1", token)
    for site, session in [("shop-b", "sess_1"), ("shop-a", "sess_2")]:
        with pytest.raises(Exception, match="token"):
            tokens.check(site, session, token)
    assert SessionTokens(b"other" * 8, required=True).issue("shop-a", "sess_1") != token


async def test_switching_transports_every_fifty_sends_loses_and_repeats_nothing(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    seen: list[int] = []
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"
    for block in range(10):
        if block % 2 == 0:
            async with connect(url) as socket:
                for i in range(50):
                    await send(client, session, f"m{block}-{i}")
                while len(seen) < (block + 1) * 50:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 2))
                    if frame["type"] == "teaser":
                        seen.append(frame["seq"])
                        await socket.send(json.dumps({"type": "ack", "id": frame["id"]}))
            await asyncio.sleep(0.05)
        else:
            for i in range(50):
                await send(client, session, f"m{block}-{i}")
            body = json_of(await poll(client, session, since=seen[-1]))
            seen += [m["seq"] for m in body["messages"]]

    assert seen == list(range(1, 501))


async def test_a_poll_does_not_resend_what_the_client_says_it_has_seen(
    server: InProcessServer, client: httpx.AsyncClient
) -> None:
    session = new_session_id()
    url = f"{server.ws_url}/api/teaser-ws?sessionId={session}&siteId={SITE}"
    async with connect(url) as socket:
        await send(client, session, "seen but never acked")
        frame = json.loads(await asyncio.wait_for(socket.recv(), 2))
    await asyncio.sleep(0.1)
    await send(client, session, "new")

    body = json_of(await poll(client, session, since=frame["seq"]))
    again = json_of(await poll(client, session))

    assert [m["message"] for m in body["messages"]] == ["new"]
    assert again["messages"] == []


def test_a_token_with_any_characters_is_simply_wrong() -> None:
    tokens = SessionTokens(b"k" * 32, required=True)
    for forged in ["é" * 32, "\ud800", "", "A" * 500]:
        with pytest.raises(Exception, match="token"):
            tokens.check("shop-a", "sess_1", forged)
